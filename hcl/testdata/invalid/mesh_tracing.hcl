mesh {
  tracing {
    endpoint      = "http://127.0.0.1:4317" # ERROR: Invalid tracing endpoint
    protocol      = "zipkin"                # ERROR: Invalid tracing protocol
    sampling      = 1.5                     # ERROR: Invalid sampling
    service_name  = "{service}-{pod}"       # ERROR: Invalid tracing service name
    max_batch     = 0                       # ERROR: Invalid max_batch
    max_queue     = 100000                  # ERROR: Invalid max_queue
    batch_timeout = "1ms"                   # ERROR: Invalid batch timeout
    exporter      = "otlp"                  # ERROR: Unsupported argument
  }
  tracing { # ERROR: Duplicate tracing block
    endpoint = "127.0.0.1:4317"
  }
}

mesh { # ERROR: Duplicate mesh block
  tracing {
    endpoint = "127.0.0.1:0"      # ERROR: Invalid tracing endpoint
    sampling = -0.1               # ERROR: Invalid sampling
    max_batch = 4096
    max_queue = 1000              # ERROR: Tracing queue smaller than a batch
  }
}

mesh { # ERROR: Duplicate mesh block
  tracing { # ERROR: Missing required argument
    sampling = 50                 # ERROR: Invalid sampling
  }
}

mesh { # ERROR: Duplicate mesh block
  tracing {
    endpoint     = "collector:4317 " # ERROR: Invalid tracing endpoint
    sampling     = "all"             # ERROR: Incorrect attribute value type
    service_name = ""                # ERROR: Invalid tracing service name
  }
}
