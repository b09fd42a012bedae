// Package authz is the inbound sidecar's authorization: it evaluates the
// rules the controller compiled (meshapi.Authz) for the caller named by the
// namespace and service of the SPIFFE ID in its verified client
// certificate. The controller resolved the policy's intentions into one
// rule per named source, per "ns/*" and for "*" (core/compile); here a named
// service beats its namespace's "*", which beats "*", deny wins among
// equals, else the default action (deny by default), and a caller from
// another trust domain is refused whatever the rules and default say. The
// winning rule's L7 permissions, when it has some, decide each request by
// the first that matches (canon.Matcher), else the default action.
//
// It links no control-plane package: core/proxy's authz_equiv_test.go
// shows it decides as policy.Decide does for the intentions the rules came
// from, over every caller, method and path spelling.
//
// Entry points: New, Rules.Authorize, Rules.AuthorizeRequest,
// CompilePermissions.
package authz
