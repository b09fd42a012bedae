package mesossim

import (
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/master"
)

func itoa(i int) string { return strconv.Itoa(i) }

func sortTasks(ts []mesos.Task) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].TaskID.Value < ts[j].TaskID.Value })
}

func sortFrameworks(fs []master.Response_GetFrameworks_Framework) {
	sort.Slice(fs, func(i, j int) bool { return fs[i].FrameworkInfo.ID.GetValue() < fs[j].FrameworkInfo.ID.GetValue() })
}
