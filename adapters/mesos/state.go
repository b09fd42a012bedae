package mesos

import (
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

// maxStatuses is how many statuses of a task the cache keeps: the latest
// carries the address and health, older ones only explain history.
const maxStatuses = 4

// State is what the adapter knows of a cluster: the tasks the master
// reports as active, the agents, and the frameworks. NewState builds one
// from GET_STATE (or SUBSCRIBED); Apply folds in one event.
type State struct {
	Tasks      map[string]mesos.Task          // by framework ID + "/" + task ID
	Agents     map[string]mesos.AgentInfo     // by agent ID
	Frameworks map[string]mesos.FrameworkInfo // by framework ID
}

// NewState builds a State from a GET_STATE answer. Completed tasks are
// left out; pending and active ones are kept (translate decides).
func NewState(gs *master.Response_GetState) *State {
	s := &State{Tasks: map[string]mesos.Task{}, Agents: map[string]mesos.AgentInfo{}, Frameworks: map[string]mesos.FrameworkInfo{}}
	if gs == nil {
		return s
	}
	for _, t := range gs.GetGetTasks().GetTasks() {
		s.putTask(t)
	}
	for _, a := range gs.GetGetAgents().GetAgents() {
		s.putAgent(a.AgentInfo)
	}
	for _, f := range gs.GetGetFrameworks().GetFrameworks() {
		s.putFramework(f.FrameworkInfo)
	}
	return s
}

func taskKey(frameworkID, taskID string) string { return frameworkID + "/" + taskID }

func (s *State) putTask(t mesos.Task) {
	if n := len(t.Statuses); n > maxStatuses {
		t.Statuses = t.Statuses[n-maxStatuses:]
	}
	s.Tasks[taskKey(t.FrameworkID.Value, t.TaskID.Value)] = t
}

func (s *State) putAgent(a mesos.AgentInfo) {
	if a.ID != nil {
		s.Agents[a.ID.Value] = a
	}
}

func (s *State) putFramework(f mesos.FrameworkInfo) {
	if f.ID != nil {
		s.Frameworks[f.ID.Value] = f
	}
}

// Apply folds one event into the state and reports whether anything an
// instance could depend on changed. SUBSCRIBED replaces the whole state.
func (s *State) Apply(ev *master.Event) bool {
	switch ev.Type {
	case master.Event_SUBSCRIBED:
		*s = *NewState(ev.GetSubscribed().GetGetState())
		return true
	case master.Event_TASK_ADDED:
		if ev.TaskAdded == nil {
			return false
		}
		s.putTask(ev.TaskAdded.Task)
		return true
	case master.Event_TASK_UPDATED:
		u := ev.TaskUpdated
		if u == nil {
			return false
		}
		k := taskKey(u.FrameworkID.Value, u.Status.TaskID.Value)
		t, ok := s.Tasks[k]
		if !ok {
			return false // TASK_ADDED always comes first; an unknown task is not ours to invent
		}
		state := u.Status.GetState()
		if u.State != nil {
			state = *u.State
		}
		if terminal(state) {
			delete(s.Tasks, k)
			return true
		}
		t.State = &state
		t.Statuses = append(append([]mesos.TaskStatus(nil), t.Statuses...), u.Status)
		s.putTask(t)
		return true
	case master.Event_AGENT_ADDED:
		if ev.AgentAdded == nil {
			return false
		}
		s.putAgent(ev.AgentAdded.Agent.AgentInfo)
		return true
	case master.Event_AGENT_REMOVED:
		if ev.AgentRemoved == nil {
			return false
		}
		delete(s.Agents, ev.AgentRemoved.AgentID.Value)
		return true
	case master.Event_FRAMEWORK_ADDED:
		if ev.FrameworkAdded != nil {
			s.putFramework(ev.FrameworkAdded.Framework.FrameworkInfo)
		}
		return true
	case master.Event_FRAMEWORK_UPDATED:
		if ev.FrameworkUpdated != nil {
			s.putFramework(ev.FrameworkUpdated.Framework.FrameworkInfo)
		}
		return true
	case master.Event_FRAMEWORK_REMOVED:
		if ev.FrameworkRemoved == nil || ev.FrameworkRemoved.FrameworkInfo.ID == nil {
			return false
		}
		id := ev.FrameworkRemoved.FrameworkInfo.ID.Value
		delete(s.Frameworks, id)
		for k, t := range s.Tasks {
			if t.FrameworkID.Value == id {
				delete(s.Tasks, k)
			}
		}
		return true
	}
	return false // HEARTBEAT and events this adapter does not use
}

// terminal reports whether a task in this state is gone for good.
// TASK_UNREACHABLE is not: the task may come back, so it stays in the
// cache (and out of the snapshot) until the master says more.
func terminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR,
		mesos.TASK_LOST, mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}
