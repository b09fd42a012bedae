// Package dashboard is the end-to-end proof of the controller's web
// dashboard (core/dashboard): a real controller with the local adapter,
// demo apps behind weft-proxy sidecars on loopback (from 127.0.105.2),
// real traffic, and the page read by headless Chromium
// (core/dashboard/dashboardtest). The test sees an edge appear that was
// not there before the traffic, with the request count it sent, and the
// denied flow it caused, and keeps a screenshot (the directory is in the
// test's log; WEFT_TEST_ARTIFACTS chooses it; WEFT_UPDATE_SCREENSHOT=1
// also copies it to docs/dashboard.png for the README).
package dashboard
