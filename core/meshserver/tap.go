package meshserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
	"github.com/weftmesh/weft/core/spiffe"
)

// The tap hub: `weft tap` and `weft top` (through the admin API's GET
// /v1/tap) start a TapSession here; the hub sends its TapRequest on the
// Tap stream of every sidecar it concerns (those of the tapped service,
// and, for a tap limited to one caller, that caller's sidecars for their
// side of the calls), and to every such sidecar that opens its stream
// later while the session lasts; the events the sidecars send back are
// merged into the session's channel.
//
// Bounds: at most MaxTapSessions sessions at once (StartTap refuses more
// with ErrTooManyTaps), each at most MaxTapDuration; each session's
// channel holds TapSessionBuffer events and drops (and counts) what does
// not fit, so a slow client never slows a sidecar's stream; sidecars bound
// their own rate (core/proxy/tap.go).
const (
	MaxTapSessions   = 16
	MaxTapDuration   = 10 * time.Minute
	TapSessionBuffer = 1024
	// tapControlQueue is the most TapRequests waiting for one sidecar's
	// stream; a sidecar that cannot take that many loses its stream (it
	// reconnects).
	tapControlQueue = 4 * MaxTapSessions
)

// ErrTooManyTaps refuses a session past MaxTapSessions.
var ErrTooManyTaps = fmt.Errorf("%d taps are running, the most a controller serves at once; wait for one to end", MaxTapSessions)

// TapQuery says what to tap.
type TapQuery struct {
	// Namespace and Service name the tapped service.
	Namespace, Service string
	// Inbound and Outbound choose the side: requests the service
	// receives, sends, or both.
	Inbound, Outbound bool
	// FromNamespace and From limit inbound requests to one calling
	// service; To limits outbound ones to one upstream service.
	FromNamespace, From, To string
	PathPrefix, Method      string
	// MaxRPS bounds each sidecar's events a second for this tap.
	MaxRPS uint32
	// Duration is how long the tap runs (at most MaxTapDuration).
	Duration time.Duration
}

// TapEvent is an event a sidecar sent, with the sidecar it came from.
type TapEvent struct {
	Instance string          // the reporting sidecar's instance
	Identity spiffe.Identity // its verified identity
	Event    *meshapi.TapEvent
}

// TapSession is one running tap: read Events until it is closed (at the
// session's end, or by Close), and Joined to learn which sidecars it
// reached.
type TapSession struct {
	ID     uint64
	Events <-chan TapEvent
	// Joined receives the instance of each sidecar that started the tap
	// (buffered; what does not fit is not sent).
	Joined <-chan string
	End    time.Time

	hub     *tapHub
	events  chan TapEvent
	joined  chan string
	legs    []tapLeg
	dropped atomic.Uint64 // here, when the client is slow
	remote  atomic.Uint64 // at the sidecars, as they reported
	once    sync.Once
	done    chan struct{}
}

// tapLeg is what one kind of sidecar is asked: the sidecars of
// namespace/service get req.
type tapLeg struct {
	namespace, service string
	req                *meshapi.TapRequest
}

// Dropped counts the events of this session that were dropped: by the
// sidecars (over a rate, or a slow stream) and here (a slow client).
func (s *TapSession) Dropped() uint64 { return s.dropped.Load() + s.remote.Load() }

// Done is closed when the session ends.
func (s *TapSession) Done() <-chan struct{} { return s.done }

// Close ends the session: the sidecars are told to stop, Events is closed.
func (s *TapSession) Close() { s.hub.end(s) }

type tapStream struct {
	instance string
	identity spiffe.Identity
	send     chan *meshapi.TapRequest
	kill     context.CancelCauseFunc
}

type tapHub struct {
	mu       sync.Mutex
	next     uint64
	sessions map[uint64]*TapSession
	streams  map[*tapStream]struct{}
}

func (h *tapHub) init() {
	if h.sessions == nil {
		h.sessions = map[uint64]*TapSession{}
		h.streams = map[*tapStream]struct{}{}
		h.next = uint64(time.Now().UnixNano())
	}
}

// StartTap starts a session for q; Close it when done.
func (s *Server) StartTap(q TapQuery) (*TapSession, error) {
	if q.Service == "" {
		return nil, errors.New("starting a tap: no service named; name the service to tap")
	}
	if !q.Inbound && !q.Outbound {
		q.Inbound, q.Outbound = true, true
	}
	if q.Namespace == "" {
		q.Namespace = "default"
	}
	if q.Duration <= 0 || q.Duration > MaxTapDuration {
		q.Duration = MaxTapDuration
	}
	h := &s.tap
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	if len(h.sessions) >= MaxTapSessions {
		return nil, ErrTooManyTaps
	}
	h.next++
	end := time.Now().Add(q.Duration)
	sess := &TapSession{ID: h.next, End: end, hub: h,
		events: make(chan TapEvent, TapSessionBuffer), joined: make(chan string, 256), done: make(chan struct{})}
	sess.Events, sess.Joined = sess.events, sess.joined
	base := func() *meshapi.TapRequest {
		return &meshapi.TapRequest{Id: sess.ID, PathPrefix: q.PathPrefix, Method: q.Method, MaxRps: q.MaxRPS, EndUnixMs: end.UnixMilli()}
	}
	own := base()
	own.Inbound, own.Outbound, own.FromService, own.FromNamespace, own.ToService = q.Inbound, q.Outbound, q.From, q.FromNamespace, q.To
	sess.legs = append(sess.legs, tapLeg{namespace: q.Namespace, service: q.Service, req: own})
	if q.From != "" && q.Inbound && q.From != q.Service {
		// The caller's side of the calls, which sees those that never
		// reached the service (no endpoint, an open circuit breaker).
		callers := base()
		callers.Outbound, callers.ToService = true, q.Service
		ns := q.FromNamespace
		if ns == "" {
			ns = q.Namespace
		}
		sess.legs = append(sess.legs, tapLeg{namespace: ns, service: q.From, req: callers})
	}
	h.sessions[sess.ID] = sess
	for st := range h.streams {
		if req := sess.requestFor(st.identity); req != nil {
			h.queue(st, req)
		}
	}
	time.AfterFunc(q.Duration, sess.Close)
	return sess, nil
}

// requestFor is what the session asks a sidecar of identity id, nil when
// nothing.
func (s *TapSession) requestFor(id spiffe.Identity) *meshapi.TapRequest {
	for _, l := range s.legs {
		if l.namespace == id.Namespace && l.service == id.Service {
			return l.req
		}
	}
	return nil
}

// queue hands req to a sidecar's stream; a stream too slow to take it is
// ended (the sidecar reconnects and gets every running session again).
// h.mu held.
func (h *tapHub) queue(st *tapStream, req *meshapi.TapRequest) {
	select {
	case st.send <- req:
	default:
		st.kill(errors.New("the sidecar does not read its tap stream"))
	}
}

func (h *tapHub) end(s *TapSession) {
	s.once.Do(func() {
		h.mu.Lock()
		delete(h.sessions, s.ID)
		stop := &meshapi.TapRequest{Id: s.ID, Stop: true}
		for st := range h.streams {
			if s.requestFor(st.identity) != nil {
				h.queue(st, stop)
			}
		}
		close(s.done)
		close(s.events) // under h.mu: deliver sends under it too
		h.mu.Unlock()
	})
}

// deliver hands the events a sidecar sent to their sessions.
func (h *tapHub) deliver(st *tapStream, msg *meshapi.TapEvents) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range msg.GetStarted() {
		if sess := h.sessions[id]; sess != nil && sess.requestFor(st.identity) != nil {
			select {
			case sess.joined <- st.instance:
			default:
			}
		}
	}
	if n := msg.GetDropped(); n > 0 {
		// Not known per session: every session this sidecar serves
		// hears of it.
		for _, sess := range h.sessions {
			if sess.requestFor(st.identity) != nil {
				sess.remote.Add(n)
			}
		}
	}
	for _, ev := range msg.GetEvents() {
		for _, id := range ev.GetTapIds() {
			sess := h.sessions[id]
			if sess == nil || sess.requestFor(st.identity) == nil {
				continue // ended, or never asked of this sidecar
			}
			select {
			case sess.events <- TapEvent{Instance: st.instance, Identity: st.identity, Event: ev}:
			default:
				sess.dropped.Add(1)
			}
		}
	}
}

// Tap is the sidecar's tap stream: it names its instance, then waits for
// the TapRequests of the sessions that concern its identity and sends the
// events of the requests they match.
func (s *Server) Tap(srv meshapi.Mesh_TapServer) error {
	id, err := s.peerIdentity(srv.Context())
	if err != nil {
		return err
	}
	first, err := srv.Recv()
	if err != nil {
		return err
	}
	if first.GetInstanceId() == "" {
		return status.Error(codes.InvalidArgument, "the first TapEvents must name the instance")
	}
	ctx, kill := context.WithCancelCause(srv.Context())
	defer kill(nil)
	st := &tapStream{instance: boundReason(first.GetInstanceId()), identity: id, send: make(chan *meshapi.TapRequest, tapControlQueue), kill: kill}
	h := &s.tap
	h.mu.Lock()
	h.init()
	h.streams[st] = struct{}{}
	for _, sess := range h.sessions {
		if req := sess.requestFor(id); req != nil {
			h.queue(st, req)
		}
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, st)
		h.mu.Unlock()
	}()
	recvErr := make(chan error, 1)
	go func() {
		for {
			msg, err := srv.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			h.deliver(st, msg)
		}
	}()
	for {
		select {
		case req := <-st.send:
			if err := srv.Send(req); err != nil {
				return err
			}
		case err := <-recvErr:
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case <-ctx.Done():
			if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
				return status.Error(codes.ResourceExhausted, c.Error())
			}
			return nil
		}
	}
}

// EndTaps ends every tap session (the controller is shutting down).
func (s *Server) EndTaps() {
	s.tap.mu.Lock()
	var all []*TapSession
	for _, sess := range s.tap.sessions {
		all = append(all, sess)
	}
	s.tap.mu.Unlock()
	for _, sess := range all {
		sess.Close()
	}
}

// TapSidecars counts the sidecars with a tap stream open.
func (s *Server) TapSidecars() int {
	s.tap.mu.Lock()
	defer s.tap.mu.Unlock()
	return len(s.tap.streams)
}

// Relayed hands the session an event a peer replica's sidecar saw
// (core/relay's tap legs): like a sidecar's own, it is dropped and counted
// when the session's channel is full, and ignored once the session ended.
func (s *TapSession) Relayed(ev TapEvent) {
	s.whileOpen(func() {
		select {
		case s.events <- ev:
		default:
			s.dropped.Add(1)
		}
	})
}

// RelayedJoined notes a sidecar on a peer replica that started the tap.
func (s *TapSession) RelayedJoined(instance string) {
	s.whileOpen(func() {
		select {
		case s.joined <- instance:
		default:
		}
	})
}

// whileOpen runs f under the hub's lock if the session has not ended
// (end closes its channels under that lock).
func (s *TapSession) whileOpen(f func()) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if s.hub.sessions[s.ID] == s {
		f()
	}
}

// RelayedDropped adds n events a peer replica dropped for this session.
func (s *TapSession) RelayedDropped(n uint64) { s.remote.Add(n) }

// TapSessions counts the tap sessions open here (those started for a
// peer replica's tap included).
func (s *Server) TapSessions() int {
	s.tap.mu.Lock()
	defer s.tap.mu.Unlock()
	return len(s.tap.sessions)
}
