mesh {
  trust_domain = "Weft.Local" # ERROR: Invalid trust domain
}

mesh { # ERROR: Duplicate mesh block
  trust_domain = "spiffe://weft.local" # ERROR: Invalid trust domain
}

mesh { # ERROR: Duplicate mesh block
  trust_domain = "weft..local" # ERROR: Invalid trust domain
}

mesh { # ERROR: Duplicate mesh block
  trust_domain = "" # ERROR: Invalid trust domain
}

mesh { # ERROR: Duplicate mesh block
  trust_domain = "weft_local" # ERROR: Invalid trust domain
}
