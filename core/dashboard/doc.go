// Package dashboard is the controller's web dashboard: one page of plain
// HTML, CSS and JavaScript (ui/, embedded in the binary with embed; no
// build step, no library, nothing fetched from anywhere but the
// controller) that draws the mesh from the admin API.
//
// Entry point: Handler, which core/api's NewHandler mounts at Prefix
// (/ui/) on the admin API's HTTPS port, ahead of the token check: the
// files hold no data. The handler answers GET and HEAD for the exact
// names of the embedded files (Prefix itself is index.html), 404 for any
// other spelling (no path cleaning, no directory listing), and sets
// SecurityHeaders on every answer: a Content-Security-Policy that runs
// only the page's own script and connects only to its own origin, no
// framing, no referrer, no caching.
//
// The data: the page (ui/app.js) fetches GET /v1/status (core/api
// StatusReport) and GET /v1/stats (core/api StatsReport) every 5 s with
// "Authorization: Bearer TOKEN". The token comes from the URL fragment
// (/ui/#token=..., which a browser never sends to the server, and which
// the page removes from the address bar at once) or from a form, and is
// kept in the tab's sessionStorage; a refused token brings the form back.
// A controller without /v1/stats (404) still shows instances, sidecars
// and roots, with a notice. Everything from the API is written with
// textContent, never as HTML: service names, paths and denial reasons
// may come from a hostile caller.
//
// What it shows: the topology (services from status and stats, edges
// from stats, laid out in layers with callers left of callees, each edge
// coloured by its success rate and labelled with its RPS, denied flows
// dashed), each service's golden signals with sparklines of its series,
// the flows seen (allowed, partly denied, denied) and the recent
// denials, the instances with health, its source and scheduler labels,
// the sidecars with their version (when the controller reports one),
// ACK/NACK state and certificate expiry, and the CA roots. Elements carry
// data-testid attributes that the tests read.
//
// Tests: dashboard_test.go serves the page with a stub admin API that
// answers the fixtures in testdata/ and reads it through headless
// Chromium (dashboardtest, which test/dashboard also uses against a real
// controller).
package dashboard
