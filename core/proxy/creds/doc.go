// Package creds holds a sidecar's credentials: its certificate and key,
// the SPIFFE identity in it, and the mesh roots it trusts (during a root
// rotation, the old and the new). The controller client (core/proxy/control)
// obtains and renews them; the data plane (core/proxy) presents and checks
// them. Entry points: New, Parse.
package creds
