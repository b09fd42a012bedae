package mesossim

import (
	"strings"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// SetTaskHealth reports a result only for a running task that declares a
// health_check, as a status with healthy set and the health reason.
func TestSetTaskHealth(t *testing.T) {
	c := start(t, Options{})
	checked := webTask("web.checked")
	checked.HealthCheck = &mesos.HealthCheck{Type: mesos.HealthCheck_HTTP, HTTP: &mesos.HealthCheck_HTTPCheckInfo{Port: 21000}}
	staging := webTask("web.staging")
	staging.HealthCheck = checked.HealthCheck
	st := mesos.TASK_STAGING
	staging.State = &st
	c.AddFramework(mesos.FrameworkInfo{User: "root", Name: "marathon"}, checked, webTask("web.unchecked"), staging)

	for _, tc := range []struct {
		task    string
		wantErr string
	}{
		{"web.checked", ""},
		{"web.unchecked", "declares no health_check"},
		{"web.staging", "not TASK_RUNNING"},
		{"web.missing", "no active task"},
	} {
		t.Run(tc.task, func(t *testing.T) {
			err := c.SetTaskHealth(tc.task, false)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("SetTaskHealth(%s) = %v, want %q", tc.task, err, tc.wantErr)
			}
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tk := range c.tasks {
		if tk.rec.TaskID.Value != "web.checked" {
			continue
		}
		last := tk.lastStatus()
		if last.Healthy == nil || *last.Healthy || last.GetState() != mesos.TASK_RUNNING || last.GetReason() != mesos.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED {
			t.Errorf("last status %+v: want TASK_RUNNING, healthy false, reason REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", last)
		}
		return
	}
	t.Fatal("web.checked is gone")
}
