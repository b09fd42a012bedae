package mesossim

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mesos/mesos-go/api/v1/lib/master"

	"github.com/weftmesh/weft/adapters/mesos/recordio"
)

// The only media types a master accepts and answers with: matched
// exactly, with no parameters, as libprocess does.
const (
	mediaJSON     = "application/json"
	mediaProtobuf = "application/x-protobuf"
	mediaRecordIO = "application/recordio"
)

// maxBody bounds a request body.
const maxBody = 16 << 20

type masterServer struct {
	c     *Cluster
	index int
	ln    net.Listener
	srv   *http.Server
	addr  string
}

func (m *masterServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1", m.guard(m.operator))
	mux.HandleFunc("/api/v1/scheduler", m.guard(m.scheduler))
	mux.HandleFunc("/master/redirect", func(w http.ResponseWriter, r *http.Request) {
		// The endpoint clients use to find the leader: 307 to it.
		m.c.mu.Lock()
		leader := m.c.masters[m.c.leader].addr
		m.c.mu.Unlock()
		w.Header().Set("Location", "//"+leader)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	// Close waits for every handler, so none logs after it returns.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.c.mu.Lock()
		if m.c.closed {
			m.c.mu.Unlock()
			http.Error(w, "Master is shutting down", http.StatusServiceUnavailable)
			return
		}
		m.c.handlers.Add(1) // under mu, before Close's Wait can start
		m.c.mu.Unlock()
		defer m.c.handlers.Done()
		mux.ServeHTTP(w, r)
	})
}

// call is a decoded request with the media types to answer in.
type call struct {
	body    []byte
	reqType string
	// respType is the media type a single response is written in, ""
	// if the client accepts none (then only a stream can answer it).
	respType string
	// streamType is what a stream's records are encoded in; recordio
	// says the client accepts application/recordio, with streamType
	// from its Message-Accept (Mesos 1.2+ streaming negotiation).
	streamType string
	recordio   bool
}

func (c call) decode(v interface {
	Unmarshal([]byte) error
}) error {
	if c.reqType == mediaProtobuf {
		return v.Unmarshal(c.body)
	}
	return json.Unmarshal(c.body, v)
}

func encode(media string, m message) ([]byte, error) {
	if media == mediaProtobuf {
		return m.Marshal()
	}
	return json.Marshal(m)
}

// guard applies, in the real master's order, what every API call meets
// before its handler: authentication, the redirect to the leader,
// recovery, method, and content negotiation.
func (m *masterServer) guard(h func(w http.ResponseWriter, r *http.Request, c call)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o := m.c.opts
		if o.User != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != o.User || p != o.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="mesos-master-readwrite"`)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		m.c.mu.Lock()
		leader, recovering, closed := m.c.leader, time.Now().Before(m.c.recovering), m.c.closed
		leaderAddr := m.c.masters[leader].addr
		m.c.mu.Unlock()
		if closed {
			http.Error(w, "Master is shutting down", http.StatusServiceUnavailable)
			return
		}
		if leader != m.index {
			// A real master answers with a scheme-relative Location.
			w.Header().Set("Location", "//"+leaderAddr+r.URL.RequestURI())
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		if recovering {
			http.Error(w, "Master has not finished recovery", http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "Expecting 'POST', received '"+r.Method+"'", http.StatusMethodNotAllowed)
			return
		}
		ct := r.Header.Get("Content-Type")
		if ct != mediaJSON && ct != mediaProtobuf {
			http.Error(w, "Expecting 'Content-Type' of application/json or application/x-protobuf", http.StatusUnsupportedMediaType)
			return
		}
		c, ok := negotiate(r.Header)
		if !ok {
			http.Error(w, "Expecting 'Accept' to allow application/json or application/x-protobuf", http.StatusNotAcceptable)
			return
		}
		c.reqType = ct
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			http.Error(w, "Failed to read the request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxBody {
			http.Error(w, "Request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		c.body = body
		h(w, r, c)
	}
}

// negotiate reads the Accept headers (every value of every one, without
// parameters): a single response goes in the first of JSON or protobuf
// listed (JSON when none is named or */* is); a stream goes as
// application/recordio when that is listed, its records in the
// Message-Accept type, else like a single response.
func negotiate(h http.Header) (call, bool) {
	var c call
	wildcard := len(h.Values("Accept")) == 0
	for _, v := range h.Values("Accept") {
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(strings.SplitN(m, ";", 2)[0])
			switch m {
			case mediaJSON, mediaProtobuf:
				if c.respType == "" {
					c.respType = m
				}
			case "*/*", "application/*":
				wildcard = true
			case mediaRecordIO:
				c.recordio = true
			}
		}
	}
	if c.respType == "" && wildcard {
		c.respType = mediaJSON
	}
	c.streamType = c.respType
	if c.recordio {
		switch ma := h.Get("Message-Accept"); ma {
		case "", "*/*":
			c.streamType = mediaJSON
		case mediaJSON, mediaProtobuf:
			c.streamType = ma
		default:
			return c, false
		}
	}
	return c, c.respType != "" || c.recordio
}

func (m *masterServer) operator(w http.ResponseWriter, r *http.Request, c call) {
	var req master.Call
	if err := c.decode(&req); err != nil {
		http.Error(w, "Failed to parse body into Call protobuf: "+err.Error(), http.StatusBadRequest)
		return
	}
	cl := m.c
	if c.respType == "" && req.Type != master.Call_SUBSCRIBE {
		http.Error(w, "Expecting 'Accept' to allow application/json or application/x-protobuf for a call that does not stream", http.StatusNotAcceptable)
		return
	}
	var resp *master.Response
	cl.mu.Lock()
	switch req.Type {
	case master.Call_GET_HEALTH:
		resp = &master.Response{Type: master.Response_GET_HEALTH, GetHealth: &master.Response_GetHealth{Healthy: true}}
	case master.Call_GET_STATE:
		resp = &master.Response{Type: master.Response_GET_STATE, GetState: cl.stateLocked()}
	case master.Call_GET_TASKS:
		resp = &master.Response{Type: master.Response_GET_TASKS, GetTasks: cl.tasksLocked()}
	case master.Call_GET_AGENTS:
		resp = &master.Response{Type: master.Response_GET_AGENTS, GetAgents: cl.agentsLocked()}
	case master.Call_GET_FRAMEWORKS:
		resp = &master.Response{Type: master.Response_GET_FRAMEWORKS, GetFrameworks: cl.frameworksLocked()}
	case master.Call_SUBSCRIBE:
		s := newStream()
		hb := cl.opts.HeartbeatInterval.Seconds()
		s.send(&master.Event{Type: master.Event_SUBSCRIBED, Subscribed: &master.Event_Subscribed{
			GetState: cl.stateLocked(), HeartbeatIntervalSeconds: &hb}})
		cl.opSubs[s] = struct{}{}
		cl.mu.Unlock()
		defer func() {
			cl.mu.Lock()
			delete(cl.opSubs, s)
			cl.mu.Unlock()
			s.close()
		}()
		serveStream(w, r, c, s, cl.opts.HeartbeatInterval, func() message {
			return &master.Event{Type: master.Event_HEARTBEAT}
		}, nil)
		return
	default:
		cl.mu.Unlock()
		http.Error(w, fmt.Sprintf("Call type %s is not implemented by the simulator", req.Type), http.StatusNotImplemented)
		return
	}
	cl.mu.Unlock()
	writeMessage(w, c.respType, resp)
}

func writeMessage(w http.ResponseWriter, media string, m message) {
	b, err := encode(media, m)
	if err != nil {
		http.Error(w, "encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", media)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// serveStream writes a stream's events as RecordIO records, chunked,
// flushing each, with a heartbeat every interval, until the stream is cut
// or the client goes away.
func serveStream(w http.ResponseWriter, r *http.Request, c call, s *stream, every time.Duration, heartbeat func() message, header http.Header) {
	for k, v := range header {
		w.Header()[k] = v
	}
	media := c.streamType
	if c.recordio {
		w.Header().Set("Content-Type", mediaRecordIO)
		w.Header().Set("Message-Content-Type", media)
	} else {
		w.Header().Set("Content-Type", media)
	}
	w.WriteHeader(http.StatusOK)
	fw := flushWriter{w: w}
	fw.Flush()
	rw := recordio.NewWriter(fw)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var m message
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case m = <-s.events:
		case <-tick.C:
			m = heartbeat()
		}
		b, err := encode(media, m)
		if err != nil {
			return
		}
		if err := rw.Write(b); err != nil {
			return
		}
	}
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }

func (f flushWriter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}
