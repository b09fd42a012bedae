package nomad

import (
	"fmt"
	"testing"

	"github.com/hashicorp/nomad/api"
)

// BenchmarkTranslate1000 translates 1000 allocations of 10 services, each
// with a meshed service: the work of one rebuild of a large cluster's
// snapshot after an event.
func BenchmarkTranslate1000(b *testing.B) {
	var st State
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("%08x-0000-0000-0000-000000000000", i)
		svc := fmt.Sprintf("svc-%d", i%10)
		st.Allocs = append(st.Allocs, &api.AllocationListStub{
			ID: id, Namespace: "default", JobID: svc, TaskGroup: "g", ClientStatus: "running", DesiredStatus: "run",
			AllocatedResources: &api.AllocatedResources{Shared: api.AllocatedSharedResources{Ports: []api.PortMapping{
				{Label: "app", Value: 20000 + i, HostIP: "127.0.0.1"}, {Label: "mesh", Value: 30000 + i, HostIP: "127.0.0.1"},
				{Label: "upstream_db", Value: 40000 + i, HostIP: "127.0.0.1"},
			}}},
		})
		st.Services = append(st.Services, &api.ServiceRegistration{
			ID: "_nomad-task-" + id + "-group-g-" + svc + "-app", ServiceName: svc, Namespace: "default",
			AllocID: id, Address: "127.0.0.1", Port: 20000 + i, Tags: []string{"v=1"}, Datacenter: "dc1",
		})
	}
	b.ReportAllocs()
	for b.Loop() {
		ins, _ := instancesOf(Translate(st))
		if len(ins) != 1000 {
			b.Fatalf("%d instances", len(ins))
		}
	}
}
