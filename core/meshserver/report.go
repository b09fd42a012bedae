package meshserver

import (
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/core/meshapi"
)

// Stats receives the sidecars' golden-signal reports (core/telemetry's
// Collector implements it). Record is called from the streams'
// goroutines and must not block for long.
type Stats interface {
	// Record takes one report of instance, whose sidecar's certificate
	// names service in namespace: the server has checked that the
	// instance is one of that service. received is when it arrived.
	Record(instance, service, namespace string, received time.Time, r *meshapi.StatsReport)
	// Refused counts a report the server did not hand over, and why.
	Refused(reason string)
}

// Limits on a report, checked before it is handed over.
const (
	// MaxReportCells is the most cells one report may carry.
	MaxReportCells = 4096
	// MaxReportDenials is the most denials one report may carry.
	MaxReportDenials = 20
	// MaxReportName is the longest peer, namespace, route or subset.
	MaxReportName = 253
	// MaxReportSources is the most intrusion sources, and the most
	// blocked sources, one report may carry.
	MaxReportSources = 20
	// MaxReportText is the longest caller, method, path or reason of a
	// denial.
	MaxReportText = 1024
)

// Report takes a sidecar's reports. The client certificate names the
// service; the first report names the instance, which must be one of
// that service as the registry has it (a sidecar reports for its own
// instance only), and every later report of the stream must name the
// same. A report that breaks a limit ends the stream with
// InvalidArgument; the sidecar's next report opens another.
func (s *Server) Report(srv meshapi.Mesh_ReportServer) error {
	if s.o.Stats == nil {
		return status.Error(codes.Unimplemented, "this controller does not collect reports")
	}
	id, err := s.peerIdentity(srv.Context())
	if err != nil {
		s.o.Stats.Refused("identity")
		return err
	}
	instance := ""
	for {
		r, err := srv.Recv()
		if errors.Is(err, io.EOF) { // the sidecar closed the stream
			return srv.SendAndClose(&meshapi.ReportAck{})
		}
		if err != nil {
			return nil // the sidecar went away
		}
		if instance == "" {
			if err := s.reportFor(r.GetInstanceId(), id.Service, id.Namespace); err != nil {
				s.o.Stats.Refused("instance")
				return err
			}
			instance = r.GetInstanceId()
		} else if r.GetInstanceId() != instance {
			s.o.Stats.Refused("instance")
			return status.Errorf(codes.PermissionDenied, "this stream reports for instance %q, not %q", instance, r.GetInstanceId())
		}
		if err := checkReport(r); err != nil {
			s.o.Stats.Refused("invalid")
			return status.Error(codes.InvalidArgument, err.Error())
		}
		s.o.Stats.Record(instance, id.Service, nsOr(id.Namespace), time.Now(), r)
	}
}

// reportFor checks that instance is one of service in namespace.
func (s *Server) reportFor(instance, service, namespace string) error {
	if instance == "" {
		return status.Error(codes.InvalidArgument, "the first report must name the instance")
	}
	_, in, ok := s.o.Workloads.Instance(instance)
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "instance %q is not in the registry (yet); reports are taken once it is", instance)
	}
	if in.Service != service || nsOr(in.Namespace) != nsOr(namespace) {
		return status.Errorf(codes.PermissionDenied, "identity of service %s/%s may not report for instance %q of service %s/%s", nsOr(namespace), service, instance, nsOr(in.Namespace), in.Service)
	}
	return nil
}

// checkReport holds a report to the limits and to the histogram the
// controller counts with.
func checkReport(r *meshapi.StatsReport) error {
	if int(r.GetLatencyBounds()) != len(meshapi.LatencyBoundsMs) {
		return fmt.Errorf("the report counts latency with %d bounds, this controller with %d: upgrade the older of the two", r.GetLatencyBounds(), len(meshapi.LatencyBoundsMs))
	}
	if n := len(r.GetCells()); n > MaxReportCells {
		return fmt.Errorf("the report has %d cells, more than %d", n, MaxReportCells)
	}
	if n := len(r.GetDenials()); n > MaxReportDenials {
		return fmt.Errorf("the report has %d denials, more than %d", n, MaxReportDenials)
	}
	for _, c := range r.GetCells() {
		for _, v := range []string{c.GetPeer(), c.GetPeerNamespace(), c.GetRoute(), c.GetSubset()} {
			if len(v) > MaxReportName {
				return fmt.Errorf("a cell's name of %d bytes is longer than %d", len(v), MaxReportName)
			}
		}
		if b := c.GetLatencyBuckets(); len(b) != 0 && len(b) != meshapi.LatencyBuckets {
			return fmt.Errorf("a cell has %d latency buckets, not %d", len(b), meshapi.LatencyBuckets)
		}
		if c.GetSuccesses() > c.GetRequests() {
			return fmt.Errorf("a cell has more successes (%d) than requests (%d)", c.GetSuccesses(), c.GetRequests())
		}
		if c.GetDirection() != meshapi.StatsDirection_STATS_INBOUND && c.GetDirection() != meshapi.StatsDirection_STATS_OUTBOUND {
			return fmt.Errorf("a cell has direction %d", c.GetDirection())
		}
	}
	if len(r.GetIntrusions()) > MaxReportSources || len(r.GetBlocked()) > MaxReportSources {
		return fmt.Errorf("the report has %d intrusion sources and %d blocks, more than %d", len(r.GetIntrusions()), len(r.GetBlocked()), MaxReportSources)
	}
	for _, in := range r.GetIntrusions() {
		if len(in.GetSource()) > MaxReportText || len(in.GetByKind()) > 16 {
			return fmt.Errorf("an intrusion source of %d bytes or %d kinds is past the limits (%d, 16)", len(in.GetSource()), len(in.GetByKind()), MaxReportText)
		}
		for k := range in.GetByKind() {
			if len(k) > MaxReportName {
				return fmt.Errorf("an intrusion kind of %d bytes is longer than %d", len(k), MaxReportName)
			}
		}
	}
	for _, b := range r.GetBlocked() {
		if len(b.GetSource()) > MaxReportText || len(b.GetReason()) > MaxReportText {
			return fmt.Errorf("a blocked source's text is longer than %d bytes", MaxReportText)
		}
	}
	for _, d := range r.GetDenials() {
		for _, v := range []string{d.GetCaller(), d.GetMethod(), d.GetPath(), d.GetReason()} {
			if len(v) > MaxReportText {
				return fmt.Errorf("a denial's text of %d bytes is longer than %d", len(v), MaxReportText)
			}
		}
	}
	return nil
}
