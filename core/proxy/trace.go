package proxy

// What the outbound span (core/proxy/tracing) records of a request's
// routing; inbound.go and outbound.go start and end the spans.

// routeName is the name of the route that took the request, or "".
func (pk *picked) routeName() string {
	if pk.route == nil {
		return ""
	}
	return pk.route.name
}

// subsetName is the subset the request was sent to, or "".
func (pk *picked) subsetName() string {
	if pk.pool == nil {
		return ""
	}
	return pk.pool.subset
}
