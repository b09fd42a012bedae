package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/weftmesh/weft/plugins/sdk"
)

// defaultPollInterval is how often the file is read for changes; the
// option poll_interval overrides it.
const defaultPollInterval = time.Second

// fileAdapter reports the instances listed in a JSON file.
type fileAdapter struct {
	mu       sync.Mutex
	path     string
	interval time.Duration
}

// options is the adapter's option schema: Info declares it, the
// controller checks --adapter-option file.NAME=VALUE against it before
// Configure, and Configure reads the values with sdk.ParseOptions.
var options = []sdk.OptionSpec{
	{Name: "poll_interval", Type: sdk.OptionDuration, Default: defaultPollInterval.String(),
		Description: "how often the file is read for changes, a positive duration"},
}

func (a *fileAdapter) Info(context.Context) (*sdk.InfoResponse, error) {
	return &sdk.InfoResponse{Name: "file", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion, Options: options}, nil
}

// Configure checks that the file can be read and parsed. Problems are
// error diagnostics, which the controller shows to the operator.
func (a *fileAdapter) Configure(_ context.Context, req *sdk.ConfigureRequest) (*sdk.ConfigureResponse, error) {
	fail := func(d sdk.Diagnostic) (*sdk.ConfigureResponse, error) {
		return &sdk.ConfigureResponse{Diagnostics: []sdk.Diagnostic{d}}, nil
	}
	if req.Source == "" {
		return fail(sdk.Errorf("No instances file", "the file adapter needs the path of a JSON instances file as its source: --adapter file=/path/instances.json"))
	}
	opts, diags := sdk.ParseOptions(options, req.Options)
	if len(diags) > 0 {
		return &sdk.ConfigureResponse{Diagnostics: diags}, nil
	}
	if unknown := opts.Unknown(); len(unknown) > 0 {
		return fail(sdk.Errorf("Unknown option", "the file adapter has no option %q; it knows poll_interval", unknown[0]))
	}
	interval := opts.Duration("poll_interval")
	if interval <= 0 {
		return fail(sdk.Errorf("Invalid poll_interval", "poll_interval = %q is not a positive duration such as 500ms or 2s", req.Options["poll_interval"]))
	}
	data, err := readFile(req.Source)
	if err != nil {
		return fail(sdk.Errorf("Cannot read instances file", "%v; check the path given as the adapter's source", err))
	}
	if _, _, err := parse(data); err != nil {
		return fail(sdk.Errorf("Instances file is malformed", "%s: %v", req.Source, err))
	}
	a.mu.Lock()
	a.path, a.interval = req.Source, interval
	a.mu.Unlock()
	return &sdk.ConfigureResponse{}, nil
}

// Watch sends the file's instances at once, then again every time the
// file's content changes. While the file is missing or malformed as a
// whole, nothing is sent, so the controller keeps the last snapshot.
//
// It is the SDK's watch loop: the file is read every poll interval (the
// loop's Resync), a read that fails is retried with backoff, and a
// snapshot equal to the last one is not sent again.
func (a *fileAdapter) Watch(ctx context.Context, _ *sdk.WatchRequest, events chan<- sdk.WatchEvent) error {
	a.mu.Lock()
	path, interval := a.path, a.interval
	a.mu.Unlock()
	if path == "" {
		return fmt.Errorf("watching instances file: the adapter is not configured; call Configure first")
	}
	// An unchanged file is not read again (stamp) nor parsed again: the
	// last records are returned as they are, which the loop finds equal
	// to what it sent at once (the same slices), so a short poll interval
	// over a large file costs a stat. A changed file is parsed, but only
	// its changed records are decoded again (parser).
	var (
		last        []byte
		lastRecords records
		lastStamp   stamp
		p           parser
	)
	loop := sdk.Loop[records]{
		Fetch: func(context.Context) (records, error) {
			st, err := stampOf(path)
			if err == nil && last != nil && st.same(lastStamp) {
				return lastRecords, nil
			}
			data, err := readFile(path)
			if err != nil {
				return records{}, fmt.Errorf("cannot read instances file; keeping the last instances: %w", err)
			}
			if last != nil && bytes.Equal(data, last) {
				lastStamp = st
				return lastRecords, nil
			}
			instances, diags, err := p.parse(data)
			if err != nil {
				return records{}, fmt.Errorf("instances file is malformed; keeping the last instances: %w", err)
			}
			last, lastRecords, lastStamp = data, records{instances, diags}, st
			return lastRecords, nil
		},
		Translate: translate,
		Resync:    interval,
		Log:       sdk.Logger().With("file", path),
	}
	changed := sdk.NewSignal()
	changed.Notify() // the first snapshot at once
	return loop.Run(ctx, changed, events)
}

// A file modified shortly before it was read may be written again with
// the same size and modification time (the kernel keeps file times at its
// clock tick, 1 to 10 ms; some file systems at whole seconds), so
// its stat does not prove it unchanged: it is read again until its time is
// older than the read by racyWindow, or by coarseRacyWindow where the
// file's time has no fraction of a second (a file system that keeps whole
// seconds, or two).
const (
	racyWindow       = 30 * time.Millisecond
	coarseRacyWindow = 3 * time.Second
)

// stamp is what stat says of the file, and when it was asked.
type stamp struct {
	info os.FileInfo
	at   time.Time
}

// stampOf stats the file at path.
func stampOf(path string) (stamp, error) {
	at := time.Now()
	info, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	return stamp{info: info, at: at}, nil
}

// same says whether s is the file of an earlier stamp, unchanged since:
// the same file (device and inode: a file renamed into place is another
// one), size and modification time, and that time older than the earlier
// stamp by the racy window, so that a write since would have moved it.
func (s stamp) same(earlier stamp) bool {
	if s.info == nil || earlier.info == nil {
		return false
	}
	mtime := earlier.info.ModTime()
	window := racyWindow
	if mtime.Nanosecond() == 0 {
		window = coarseRacyWindow
	}
	return os.SameFile(s.info, earlier.info) && s.info.Size() == earlier.info.Size() &&
		s.info.ModTime().Equal(mtime) && mtime.Before(earlier.at.Add(-window))
}

// records is what the file holds: its instances, and the records skipped.
type records struct {
	instances []sdk.Instance
	diags     []sdk.Diagnostic
}

// translate is the loop's translate step: the snapshot and its problems.
func translate(r records) (sdk.Snapshot, []sdk.Diagnostic) {
	return sdk.Snapshot{Instances: r.instances}, r.diags
}
