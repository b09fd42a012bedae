mesh {
  protection {
    read_header_timeout = "2h"   # ERROR: Invalid read_header_timeout
    max_header_bytes    = 10     # ERROR: Invalid max_header_bytes
    max_in_flight       = 0      # ERROR: Invalid max_in_flight
    blocking { # ERROR: Blocking blocks nothing
      threshold = 5
    }
  }
}
