package main

import (
	"context"
	"fmt"
	"log"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler/calls"
)

// The node proxy (--node-proxy; docs/deployment-models.md): one
// weft-proxy task per agent, launched from the first offer of each agent,
// serving the agent's instances of apps with proxy_mode "node" (which
// then run without a sidecar). Mesos gives a task no identity, so the
// framework gives the node-proxy task one: a token from the controller's
// admin API naming this framework, the agent and the task
// (nodeProxyTokenNode), which the Mesos adapter accepts only while the
// master reports that task running on that agent with the label
// weft.proxy=node. A node-proxy task that ends is relaunched from the
// agent's next offer, with a new task ID and a new token.

// nodeProxy is the node-proxy task of one agent.
type nodeProxy struct {
	task    string
	running bool
}

// nodeProxyCredentialEnv is the variable that holds the node proxy's token
// (its --credential-env).
const nodeProxyCredentialEnv = "WEFT_NODE_PROXY_TOKEN"

// nodeProxyTokenNode is what the token names as its node: the node-proxy
// task of this framework on this agent. It is the format the Mesos adapter
// reads (adapters/mesos NodeProxyTokenNode; test/mesos runs the two
// together). Mesos IDs contain no '/'.
func nodeProxyTokenNode(frameworkID, agentID, taskID string) string {
	return "mesos-node-proxy/" + frameworkID + "/" + agentID + "/" + taskID
}

// launchNodeProxy builds the node-proxy task of agent, with its token.
func (s *sched) launchNodeProxy(ctx context.Context, agent mesos.AgentID) (mesos.Offer_Operation, error) {
	s.nodeProxySeq++
	task := fmt.Sprintf("weft-node-proxy.%d", s.nodeProxySeq)
	token, err := s.adminToken(ctx, map[string]any{"adapter": "mesos",
		"node": nodeProxyTokenNode(s.info.ID.GetValue(), agent.Value, task), "ttl_seconds": 600})
	if err != nil {
		return mesos.Offer_Operation{}, fmt.Errorf("asking for the node proxy's token: %w", err)
	}
	cmd := fmt.Sprintf(`exec %s --node %s --credential-adapter mesos --credential-env %s --controller %s --trust-bundle %s --data-dir .`,
		shellQuote(s.cfg.proxy), shellQuote(agent.Value), nodeProxyCredentialEnv, shellQuote(s.cfg.controller), shellQuote(s.cfg.trustBundle))
	info := mesos.TaskInfo{
		Name: "weft-node-proxy", TaskID: mesos.TaskID{Value: task}, AgentID: agent,
		Resources: []mesos.Resource{cpusRes(proxyCPUs), memRes(proxyMem)},
		// The token is in the task's environment, which the master's
		// operator API does not show (its tasks carry no CommandInfo);
		// the label is what the adapter requires of a node proxy.
		Command: &mesos.CommandInfo{Value: &cmd, Environment: &mesos.Environment{Variables: []mesos.Environment_Variable{
			envVar(nodeProxyCredentialEnv, token)}}},
		Labels: &mesos.Labels{Labels: []mesos.Label{label("weft.proxy", "node")}},
	}
	executor := mesos.ExecutorInfo{
		Type: mesos.ExecutorInfo_DEFAULT, ExecutorID: mesos.ExecutorID{Value: task}, FrameworkID: s.info.ID,
		Resources: []mesos.Resource{cpusRes(0.05), memRes(32)},
	}
	s.nodeProxies[agent.Value] = &nodeProxy{task: task}
	s.nodeProxyTask[task] = agent.Value
	s.live[task] = agent.Value
	log.Printf("launching node proxy %s on agent %s", task, agent.Value)
	return calls.OpLaunchGroup(executor, info), nil
}

// nodeProxyUpdate tracks a node-proxy task: one that ended is forgotten,
// so that the agent's next offer launches another.
func (s *sched) nodeProxyUpdate(ctx context.Context, agent, task string, st mesos.TaskStatus) {
	np := s.nodeProxies[agent]
	if np == nil || np.task != task {
		// An older node proxy of the agent that comes back: stop it.
		if st.GetState() == mesos.TASK_RUNNING {
			s.call(ctx, calls.Kill(task, agent))
		}
		if ended(st.GetState()) {
			delete(s.nodeProxyTask, task)
		}
		return
	}
	switch st.GetState() {
	case mesos.TASK_RUNNING:
		if !np.running {
			np.running = true
			log.Printf("node proxy %s is running on agent %s", task, agent)
		}
	case mesos.TASK_STAGING, mesos.TASK_STARTING, mesos.TASK_KILLING:
	default:
		if !s.stopping {
			log.Printf("node proxy %s on agent %s is %s (%s); launching another", task, agent, st.GetState(), st.GetMessage())
		}
		if st.GetState() == mesos.TASK_UNREACHABLE || st.GetState() == mesos.TASK_LOST {
			s.call(ctx, calls.Kill(task, agent))
		}
		delete(s.nodeProxies, agent)
		if ended(st.GetState()) {
			delete(s.nodeProxyTask, task)
		}
		if !s.stopping {
			s.call(ctx, calls.Revive())
		}
	}
}
