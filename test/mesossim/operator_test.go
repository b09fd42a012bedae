package mesossim

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/client"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli"
	"github.com/mesos/mesos-go/api/v1/lib/httpcli/httpmaster"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/master/calls"
)

func start(t *testing.T, opts Options) *Cluster {
	t.Helper()
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	opts.Logf = t.Logf
	c, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// operatorClient is mesos-go's own operator API client.
func operatorClient(url string, codec encoding.Codec, user, pass string) calls.Sender {
	opts := []httpcli.Opt{httpcli.Endpoint(url + "/api/v1"), httpcli.Codec(codec)}
	if user != "" {
		opts = append(opts, httpcli.Do(httpcli.With(httpcli.BasicAuth(user, pass))))
	}
	return httpmaster.NewSender(httpcli.New(opts...).Send)
}

func webTask(id string) mesos.Task {
	running := mesos.TASK_RUNNING
	name, portName, proto := "web", "mesh", "tcp"
	ip := "127.0.0.9"
	return mesos.Task{
		Name: "web", TaskID: mesos.TaskID{Value: id}, State: &running,
		Discovery: &mesos.DiscoveryInfo{Visibility: mesos.FRAMEWORK, Name: &name,
			Ports: &mesos.Ports{Ports: []mesos.Port{{Number: 21000, Name: &portName, Protocol: &proto}}}},
		Statuses: []mesos.TaskStatus{{TaskID: mesos.TaskID{Value: id}, State: &running,
			ContainerStatus: &mesos.ContainerStatus{NetworkInfos: []mesos.NetworkInfo{{IPAddresses: []mesos.NetworkInfo_IPAddress{{IPAddress: &ip}}}}}}},
	}
}

// Every operator call answers through mesos-go's client, in both codecs,
// and SUBSCRIBE streams SUBSCRIBED, then TASK_ADDED and HEARTBEAT.
func TestOperatorAPIWithMesosGoClient(t *testing.T) {
	for _, media := range []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf} {
		t.Run(string(media), func(t *testing.T) {
			c := start(t, Options{HeartbeatInterval: 100 * time.Millisecond, User: "ops", Password: "s3cret"})
			c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, webTask("web.1"))
			cli := operatorClient(c.URLs()[0], codecs.ByMediaType[media], "ops", "s3cret")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			for _, tc := range []struct {
				call  *master.Call
				check func(*master.Response) string
			}{
				{calls.GetHealth(), func(r *master.Response) string {
					if !r.GetGetHealth().GetHealthy() {
						return "not healthy"
					}
					return ""
				}},
				{calls.GetState(), func(r *master.Response) string {
					st := r.GetGetState()
					if n := len(st.GetGetTasks().GetTasks()); n != 1 {
						return "tasks: " + itoa(n)
					}
					if n := len(st.GetGetAgents().GetAgents()); n != 1 {
						return "agents: " + itoa(n)
					}
					if n := len(st.GetGetFrameworks().GetFrameworks()); n != 1 {
						return "frameworks: " + itoa(n)
					}
					return ""
				}},
				{calls.GetTasks(), func(r *master.Response) string {
					if tk := r.GetGetTasks().GetTasks(); len(tk) != 1 || tk[0].GetDiscovery().GetName() != "web" {
						return "tasks wrong"
					}
					return ""
				}},
				{calls.GetAgents(), func(r *master.Response) string {
					if a := r.GetGetAgents().GetAgents(); len(a) != 1 || a[0].AgentInfo.Hostname != "127.0.0.1" {
						return "agents wrong"
					}
					return ""
				}},
				{calls.GetFrameworks(), func(r *master.Response) string {
					if f := r.GetGetFrameworks().GetFrameworks(); len(f) != 1 || f[0].FrameworkInfo.Name != "marathon" {
						return "frameworks wrong"
					}
					return ""
				}},
			} {
				resp, err := cli.Send(ctx, calls.NonStreaming(tc.call))
				if err != nil {
					t.Fatalf("%s: %v", tc.call.Type, err)
				}
				var r master.Response
				err = resp.Decode(&r)
				resp.Close()
				if err != nil {
					t.Fatalf("%s: decoding: %v", tc.call.Type, err)
				}
				if r.Type.String() != tc.call.Type.String() {
					t.Errorf("%s answered with type %s", tc.call.Type, r.Type)
				}
				if msg := tc.check(&r); msg != "" {
					t.Errorf("%s: %s", tc.call.Type, msg)
				}
			}

			resp, err := cli.Send(ctx, calls.NonStreaming(calls.Subscribe()))
			if err != nil {
				t.Fatalf("SUBSCRIBE: %v", err)
			}
			defer resp.Close()
			var ev master.Event
			if err := resp.Decode(&ev); err != nil || ev.Type != master.Event_SUBSCRIBED {
				t.Fatalf("first event: %v %v", ev.Type, err)
			}
			if n := len(ev.GetSubscribed().GetGetState().GetGetTasks().GetTasks()); n != 1 {
				t.Fatalf("SUBSCRIBED carries %d tasks, want 1", n)
			}
			c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "aurora"}, webTask("web.2"))
			seen := map[master.Event_Type]bool{}
			for !(seen[master.Event_TASK_ADDED] && seen[master.Event_HEARTBEAT] && seen[master.Event_FRAMEWORK_ADDED]) {
				ev = master.Event{}
				if err := resp.Decode(&ev); err != nil {
					t.Fatalf("reading the stream after %v: %v", seen, err)
				}
				seen[ev.Type] = true
				if ev.Type == master.Event_TASK_ADDED && ev.GetTaskAdded().Task.TaskID.Value != "web.2" {
					t.Fatalf("TASK_ADDED for %s", ev.GetTaskAdded().Task.TaskID.Value)
				}
			}
		})
	}
}

func post(t *testing.T, url string, header map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// What a real master does at the HTTP level, which clients depend on.
func TestHTTPBehaviours(t *testing.T) {
	c := start(t, Options{Masters: 2, User: "ops", Password: "s3cret", RecoveryPeriod: time.Hour})
	c.mu.Lock()
	c.recovering = time.Time{}
	c.mu.Unlock()
	leader, follower := c.URLs()[0], c.URLs()[1]
	auth := "Basic b3BzOnMzY3JldA==" // ops:s3cret
	json := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "Authorization": auth}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range json {
			h[a] = b
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name       string
		url        string
		header     map[string]string
		body       string
		wantStatus int
		wantHeader map[string]string
	}{
		{"GET_STATE", leader, json, `{"type":"GET_STATE"}`, 200, map[string]string{"Content-Type": "application/json"}},
		{"charset in Content-Type", leader, with("Content-Type", "application/json; charset=utf-8"), `{"type":"GET_STATE"}`, 415, nil},
		{"unknown Accept", leader, with("Accept", "text/html"), `{"type":"GET_STATE"}`, 406, nil},
		{"no credentials", leader, with("Authorization", ""), `{"type":"GET_STATE"}`, 401, map[string]string{"WWW-Authenticate": `Basic realm="mesos-master-readwrite"`}},
		{"wrong password", leader, with("Authorization", "Basic b3BzOndyb25n"), `{"type":"GET_STATE"}`, 401, nil},
		{"garbage body", leader, json, `{"type":`, 400, nil},
		{"protobuf garbage", leader, with("Content-Type", "application/x-protobuf"), "\xff\xff\xff", 400, nil},
		{"non-leader redirects, scheme-relative", follower, json, `{"type":"GET_STATE"}`, 307,
			map[string]string{"Location": "//" + strings.TrimPrefix(leader, "http://") + "/api/v1"}},
		{"scheduler on non-leader", follower + "/api/v1/scheduler", nil, "", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if !strings.HasSuffix(url, "/scheduler") {
				url += "/api/v1"
			} else {
				tc.header, tc.body, tc.wantStatus = json, `{"type":"SUBSCRIBE"}`, 307
				tc.wantHeader = map[string]string{"Location": "//" + strings.TrimPrefix(leader, "http://") + "/api/v1/scheduler"}
			}
			resp := post(t, url, tc.header, tc.body)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("stream is chunked without Content-Length", func(t *testing.T) {
		resp := post(t, leader+"/api/v1", json, `{"type":"SUBSCRIBE"}`)
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("status %d, Content-Length %d, Transfer-Encoding %v", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	})

	t.Run("503 while the new leader recovers", func(t *testing.T) {
		if err := c.SetLeader(1); err != nil {
			t.Fatal(err)
		}
		resp := post(t, follower+"/api/v1", json, `{"type":"GET_STATE"}`)
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
		resp = post(t, leader+"/api/v1", json, `{"type":"GET_STATE"}`)
		resp.Body.Close()
		if resp.StatusCode != 307 || resp.Header.Get("Location") != "//"+strings.TrimPrefix(follower, "http://")+"/api/v1" {
			t.Fatalf("old leader: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// A leader change cuts the old leader's streams, as a master that loses
// leadership (its process exits) does.
func TestFailoverCutsStreams(t *testing.T) {
	c := start(t, Options{Masters: 2})
	cli := operatorClient(c.URLs()[0], codecs.ByMediaType[codecs.MediaTypeJSON], "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cli.Send(ctx, calls.NonStreaming(calls.Subscribe()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var ev master.Event
	if err := resp.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLeader(1); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := resp.Decode(&ev); err != nil {
			break
		}
		if i > 100 {
			t.Fatal("stream still open after failover")
		}
	}
}

// Mesos 1.2+ streaming negotiation: Accept: application/recordio with
// Message-Accept, answered with Content-Type application/recordio and
// Message-Content-Type; mesos-go's streaming response class reads it.
func TestRecordIOAcceptNegotiation(t *testing.T) {
	c := start(t, Options{})
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, webTask("web.1"))
	cli := httpcli.New(httpcli.Endpoint(c.URLs()[0]+"/api/v1"), httpcli.Codec(codecs.ByMediaType[codecs.MediaTypeProtobuf]))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Send(calls.NonStreaming(calls.Subscribe()), client.ResponseClassStreaming, httpcli.Context(ctx))
	if err != nil {
		t.Fatalf("SUBSCRIBE with the streaming response class: %v", err)
	}
	defer resp.Close()
	var ev master.Event
	if err := resp.Decode(&ev); err != nil || ev.Type != master.Event_SUBSCRIBED || len(ev.GetSubscribed().GetGetState().GetGetTasks().GetTasks()) != 1 {
		t.Fatalf("first event %s, %v", ev.Type, err)
	}
	// A call that does not stream cannot be answered as a stream.
	r := post(t, c.URLs()[0]+"/api/v1", map[string]string{"Content-Type": "application/json", "Accept": "application/recordio",
		"Message-Accept": "application/json"}, `{"type":"GET_STATE"}`)
	r.Body.Close()
	if r.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("GET_STATE asked for as a stream: status %d, want 406", r.StatusCode)
	}
}
