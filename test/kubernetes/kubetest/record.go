package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Record writes the Pods, Services and EndpointSlices of namespace ns, as
// the API server returns them (without managedFields), to path as
// multi-document YAML: fixtures for the adapter's translate tests.
func (c *Cluster) Record(ns, path, comment string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var objs []runtime.Object
	pods, err := c.Admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	for i := range pods.Items {
		pods.Items[i].APIVersion, pods.Items[i].Kind = "v1", "Pod"
		objs = append(objs, &pods.Items[i])
	}
	svcs, err := c.Admin.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing services: %w", err)
	}
	for i := range svcs.Items {
		svcs.Items[i].APIVersion, svcs.Items[i].Kind = "v1", "Service"
		objs = append(objs, &svcs.Items[i])
	}
	slices, err := c.Admin.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing EndpointSlices: %w", err)
	}
	for i := range slices.Items {
		slices.Items[i].APIVersion, slices.Items[i].Kind = "discovery.k8s.io/v1", "EndpointSlice"
		objs = append(objs, &slices.Items[i])
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s\n", comment)
	for i, o := range objs {
		o.(metav1.Object).SetManagedFields(nil)
		b, err := yaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("encoding: %w", err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(b)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
