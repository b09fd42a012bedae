package api

import "github.com/weftmesh/weft/core/dashboard"

// dashboardFiles serves the web dashboard (core/dashboard) at /ui/ on the
// admin API, ahead of the token check: its files hold no data; the page
// reads GET /v1/status and GET /v1/stats with the token like any client.
var dashboardFiles = dashboard.Handler()
