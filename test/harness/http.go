package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// httpClient is the plain-HTTP client of Get and GetJSON: apps and
// sidecars' admin ports on loopback.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// Do sends req on c and returns the status, the body and the response
// headers. Only a failed request or read is an error, naming the request:
// any status is an answer (a body cut short comes with its status and
// what was read).
func Do(c *http.Client, req *http.Request) (int, string, http.Header, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, string(b), resp.Header, fmt.Errorf("reading %s %s: %w", req.Method, req.URL, err)
	}
	return resp.StatusCode, string(b), resp.Header, nil
}

// Get sends GET url (Do, with a 10s client) and returns the status and
// the body.
func Get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	code, body, _, err := Do(httpClient, req)
	return code, body, err
}

// GetJSON sends GET url and decodes a 200 answer into v (nil: the status
// alone matters). Another status is an error that quotes the body.
func GetJSON(url string, v any) error {
	code, body, err := Get(context.Background(), url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s: %s", url, code, http.StatusText(code), strings.TrimSpace(body))
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("decoding GET %s (%s): %w", url, body, err)
	}
	return nil
}

// DemoAnswer is the demo app's (examples/local/demoapp) answer to
// GET /call/<upstream>/...: its own service, and the upstream's status
// and answer, whose caller is the SPIFFE ID the upstream's sidecar
// verified.
type DemoAnswer struct {
	Service  string `json:"service"`
	Status   int    `json:"status"`
	Response struct {
		Service  string `json:"service"`
		Instance string `json:"instance"`
		Caller   string `json:"caller"`
	} `json:"response"`
}

// CallThrough asks the demo app at appAddr (host:port) to call path (say
// "/call/api") through its sidecar, and decodes its answer.
func CallThrough(appAddr, path string) (*DemoAnswer, error) {
	var a DemoAnswer
	if err := GetJSON("http://"+appAddr+path, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// SidecarConfig is the part of a sidecar's admin GET /config the tests
// read: the applied version and each upstream's endpoints.
type SidecarConfig struct {
	Version string `json:"version"`
	Config  struct {
		Upstreams []struct {
			Name      string `json:"name"`
			Service   string `json:"service"`
			Endpoints []struct {
				InstanceID string `json:"instanceId"`
			} `json:"endpoints"`
		} `json:"upstreams"`
		// Egress is the mesh's egress mode as the sidecar got it (absent:
		// allow, and no external upstream).
		Egress *struct {
			Mode     string   `json:"mode"`
			Declared []string `json:"declared"`
		} `json:"egress"`
	} `json:"config"`
}

// ReadSidecarConfig reads the configuration a sidecar applied, from its
// admin address (host:port).
func ReadSidecarConfig(adminAddr string) (*SidecarConfig, error) {
	var c SidecarConfig
	if err := GetJSON("http://"+adminAddr+"/config", &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Endpoints are the instance IDs, sorted, of the upstream named so; nil
// when the sidecar has no such upstream.
func (c *SidecarConfig) Endpoints(upstream string) []string {
	var ids []string
	for _, u := range c.Config.Upstreams {
		if u.Name == upstream {
			for _, e := range u.Endpoints {
				ids = append(ids, e.InstanceID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// SidecarEndpoints reads a sidecar's configuration (ReadSidecarConfig) and
// returns its endpoints for upstream (Endpoints).
func SidecarEndpoints(adminAddr, upstream string) ([]string, error) {
	c, err := ReadSidecarConfig(adminAddr)
	if err != nil {
		return nil, err
	}
	return c.Endpoints(upstream), nil
}
