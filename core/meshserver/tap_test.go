package meshserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftmesh/weft/core/meshapi"
)

// tapSidecar opens the Tap stream of a joined instance of svc and names
// the instance.
func tapSidecar(t *testing.T, h *harness, id, svc string) meshapi.Mesh_TapClient {
	t.Helper()
	h.addInstance(id, svc)
	cert, err := join(t, h.dial(t, nil), id, h.token(t, id, svc))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := h.dial(t, cert).Tap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&meshapi.TapEvents{InstanceId: id}); err != nil {
		t.Fatal(err)
	}
	return st
}

// recvTap is the next TapRequest on st, within 10s.
func recvTap(t *testing.T, st meshapi.Mesh_TapClient) *meshapi.TapRequest {
	t.Helper()
	got := make(chan *meshapi.TapRequest, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := st.Recv()
		if err != nil {
			errc <- err
			return
		}
		got <- r
	}()
	select {
	case r := <-got:
		return r
	case err := <-errc:
		t.Fatalf("receiving a tap request: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no tap request within 10s")
	}
	return nil
}

func waitStreams(t *testing.T, h *harness, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.TapSidecars() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d tap streams, want %d", h.srv.TapSidecars(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter the stream sets
	}
}

func nextEvent(t *testing.T, s *TapSession) TapEvent {
	t.Helper()
	select {
	case ev, ok := <-s.Events:
		if !ok {
			t.Fatal("the session ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no tap event within 10s")
	}
	return TapEvent{}
}

// A tap reaches the sidecars of the tapped service (and, with From, the
// caller's, for their outbound side), not others; sidecars that connect
// later join it; their events reach the session labelled with the
// sidecar's verified identity; events for a session a sidecar was never
// asked for are dropped; Close tells the sidecars to stop.
func TestTapHub(t *testing.T) {
	h := start(t)
	api0 := tapSidecar(t, h, "api-0", "api")
	web0 := tapSidecar(t, h, "web-0", "web")
	other := tapSidecar(t, h, "db-0", "db")
	waitStreams(t, h, 3)

	sess, err := h.srv.StartTap(TapQuery{Service: "api", Inbound: true, From: "web", PathPrefix: "/orders", MaxRPS: 10, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	r := recvTap(t, api0)
	if r.GetId() != sess.ID || !r.GetInbound() || r.GetOutbound() || r.GetFromService() != "web" || r.GetPathPrefix() != "/orders" || r.GetMaxRps() != 10 {
		t.Errorf("api's sidecar got %v", r)
	}
	w := recvTap(t, web0)
	if w.GetId() != sess.ID || !w.GetOutbound() || w.GetInbound() || w.GetToService() != "api" {
		t.Errorf("the caller's sidecar got %v, want its outbound side to api", w)
	}

	// A second api sidecar, connecting now, joins the running tap.
	api1 := tapSidecar(t, h, "api-1", "api")
	if r := recvTap(t, api1); r.GetId() != sess.ID {
		t.Errorf("a late sidecar got %v", r)
	}

	if err := api0.Send(&meshapi.TapEvents{Started: []uint64{sess.ID}, Events: []*meshapi.TapEvent{{TapIds: []uint64{sess.ID}, Inbound: true, Path: "/orders/1"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case inst := <-sess.Joined:
		if inst != "api-0" {
			t.Errorf("joined %q, want api-0", inst)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not hear that api-0 started")
	}
	if ev := nextEvent(t, sess); ev.Instance != "api-0" || ev.Identity.Service != "api" || ev.Event.GetPath() != "/orders/1" {
		t.Errorf("event %+v", ev)
	}
	// db's sidecar was never asked: what it claims for the session is
	// dropped, and the next event is api-1's.
	if err := other.Send(&meshapi.TapEvents{Events: []*meshapi.TapEvent{{TapIds: []uint64{sess.ID}, Path: "/forged"}}}); err != nil {
		t.Fatal(err)
	}
	if err := api1.Send(&meshapi.TapEvents{Events: []*meshapi.TapEvent{{TapIds: []uint64{sess.ID}, Path: "/orders/2"}}, Dropped: 3}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, sess); ev.Event.GetPath() != "/orders/2" || ev.Instance != "api-1" {
		t.Errorf("event %+v, want api-1's /orders/2 (db's forged one dropped)", ev)
	}
	if sess.Dropped() != 3 {
		t.Errorf("dropped %d, want the 3 the sidecar reported", sess.Dropped())
	}

	sess.Close()
	if r := recvTap(t, api0); !r.GetStop() || r.GetId() != sess.ID {
		t.Errorf("after Close api's sidecar got %v, want a stop", r)
	}
	if _, ok := <-sess.Events; ok {
		t.Error("events after Close")
	}
}

// A controller runs at most MaxTapSessions taps; a session ends by itself
// at its duration; a slow client loses events, never blocks the sidecar.
func TestTapHubBounds(t *testing.T) {
	h := start(t)
	var sessions []*TapSession
	for range MaxTapSessions {
		s, err := h.srv.StartTap(TapQuery{Service: "api", Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	if _, err := h.srv.StartTap(TapQuery{Service: "api"}); !errors.Is(err, ErrTooManyTaps) {
		t.Errorf("tap %d: %v, want ErrTooManyTaps", MaxTapSessions+1, err)
	}
	sessions[0].Close()
	s, err := h.srv.StartTap(TapQuery{Service: "api", Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("a tap after one ended: %v", err)
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a tap of 50ms did not end")
	}
	if _, err := h.srv.StartTap(TapQuery{}); err == nil {
		t.Error("a tap without a service started")
	}
	h.srv.EndTaps()
	for _, s := range sessions {
		select {
		case <-s.Done():
		default:
			t.Error("EndTaps left a session running")
		}
	}

	slow, err := h.srv.StartTap(TapQuery{Service: "api", Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	api0 := tapSidecar(t, h, "api-0", "api")
	recvTap(t, api0)
	batch := &meshapi.TapEvents{}
	for range 64 {
		batch.Events = append(batch.Events, &meshapi.TapEvent{TapIds: []uint64{slow.ID}})
	}
	n := (TapSessionBuffer + 500) / 64
	for range n {
		if err := api0.Send(batch); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(slow.Events)+int(slow.Dropped()) < n*64 {
		if time.Now().After(deadline) {
			t.Fatalf("%d events queued and %d dropped of %d sent", len(slow.Events), slow.Dropped(), n*64)
		}
		time.Sleep(5 * time.Millisecond) // polling counters the stream sets
	}
	if len(slow.Events) != TapSessionBuffer || slow.Dropped() == 0 {
		t.Errorf("a client that reads nothing: %d queued, %d dropped; want %d queued and the rest dropped", len(slow.Events), slow.Dropped(), TapSessionBuffer)
	}
}
