package kubernetes

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// EventSource is the component name on the Events the adapter records.
const EventSource = "weft-kubernetes-adapter"

// eventRecorder reports skipped pods as Warning Events on the pods, once
// per pod and message (again after eventTTL), in the background so that a
// slow API server never holds up a snapshot.
type eventRecorder struct {
	client kubernetes.Interface
	log    hclog.Logger

	mu   sync.Mutex
	sent map[string]time.Time // uid + message -> when
}

func newEventRecorder(client kubernetes.Interface, log hclog.Logger) *eventRecorder {
	return &eventRecorder{client: client, log: log, sent: map[string]time.Time{}}
}

func (r *eventRecorder) record(ctx context.Context, probs []problem) {
	now := time.Now()
	r.mu.Lock()
	var todo []problem
	for _, p := range probs {
		key := p.UID + "\x00" + p.Message
		if t, ok := r.sent[key]; ok && now.Sub(t) < eventTTL {
			continue
		}
		r.sent[key] = now
		todo = append(todo, p)
	}
	for k, t := range r.sent {
		if now.Sub(t) >= eventTTL {
			delete(r.sent, k)
		}
	}
	r.mu.Unlock()
	for _, p := range todo {
		r.log.Warn("pod skipped", "pod", p.Namespace+"/"+p.Pod, "reason", p.Reason, "message", p.Message)
		// Not bound to Watch's ctx: a snapshot sent just before Watch is
		// cancelled still gets its Events, each bounded by requestTimeout.
		go r.emit(context.WithoutCancel(ctx), p, now)
	}
}

func (r *eventRecorder) emit(ctx context.Context, p problem, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ts := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: p.Pod + ".weft-", Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Pod, UID: types.UID(p.UID),
		},
		Reason:         p.Reason,
		Message:        fmt.Sprintf("Weft skipped this pod: %s", p.Message),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: EventSource},
		FirstTimestamp: ts,
		LastTimestamp:  ts,
		Count:          1,
	}
	if _, err := r.client.CoreV1().Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		r.log.Warn("recording an event on a skipped pod", "pod", p.Namespace+"/"+p.Pod, "error", err)
	}
}
