package mesos

import (
	"encoding/json"
	"fmt"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

func bigState(n int) *State {
	s := NewState(nil)
	s.Agents["agent-1"] = mesos.AgentInfo{Hostname: "127.0.0.1", ID: &mesos.AgentID{Value: "agent-1"}}
	for i := 0; i < n; i++ {
		s.putTask(runningTask(fmt.Sprintf("api.%05d", i), func(t *mesos.Task) {
			t.Labels = labels("weft.service", "api", "version", "v2")
		}))
	}
	return s
}

// Translating a cluster of 5,000 meshed tasks: done on every event.
func BenchmarkTranslate5000(b *testing.B) {
	s := bigState(5000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ins, _ := instancesOf(Translate(s)); len(ins) != 5000 {
			b.Fatal(len(ins))
		}
	}
}

// Decoding and applying one TASK_UPDATED event, as the stream does.
func BenchmarkApplyTaskUpdated(b *testing.B) {
	s := bigState(5000)
	running := mesos.TASK_RUNNING
	ev := master.Event{Type: master.Event_TASK_UPDATED, TaskUpdated: &master.Event_TaskUpdated{
		FrameworkID: mesos.FrameworkID{Value: "fw"}, State: &running,
		Status: mesos.TaskStatus{TaskID: mesos.TaskID{Value: "api.00042"}, State: &running}}}
	raw, err := json.Marshal(&ev)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var e master.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			b.Fatal(err)
		}
		s.Apply(&e)
	}
}
