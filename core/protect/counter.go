package protect

import (
	"net/http"
	"sync/atomic"
)

// Counter counts a Shield's refusals by reason: set Options.Refused to
// its Refused where nothing else counts them (the controller's APIs; the
// admin API's status shows them).
type Counter struct {
	n [5]atomic.Uint64 // by the index of Reasons
}

// Refused counts one refusal; it fits Options.Refused.
func (c *Counter) Refused(reason, _ string, _ *http.Request) {
	for i, r := range Reasons {
		if r == reason {
			c.n[i].Add(1)
			return
		}
	}
}

// Counts returns the reasons counted so far (none: an empty map).
func (c *Counter) Counts() map[string]uint64 {
	out := map[string]uint64{}
	for i, r := range Reasons {
		if v := c.n[i].Load(); v > 0 {
			out[r] = v
		}
	}
	return out
}
