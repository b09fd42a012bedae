package prometheus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/test/harness"
)

// dashboard is the part of a Grafana dashboard the check reads.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			AllValue   string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

// readDashboard reads examples/grafana/weft-dashboard.json.
func readDashboard(t *testing.T) dashboard {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "grafana", "weft-dashboard.json"))
	if err != nil {
		t.Fatalf("reading the Grafana dashboard: %v", err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decoding examples/grafana/weft-dashboard.json: %v", err)
	}
	return d
}

// grafanaVars are the values the check gives the dashboard's variables:
// $service all of them (its allValue), $__rate_interval what Grafana
// would pick for a 1s scrape interval, rounded up to a window this test's
// short history has two samples in.
var grafanaVars = []string{"$__rate_interval", "30s", "$service", ".*"}

// checkDashboard checks the dashboard's shape (what Grafana needs to
// import it: a schema version, unique panel IDs, a place on the grid,
// every panel on the datasource variable) and runs every panel's
// expression against p: each must parse and return at least one series
// on the mesh the test runs.
func checkDashboard(t *testing.T, p *promServer) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard uid %q, title %q, schemaVersion %d: want a uid, a title and a schema a current Grafana imports (36 or later)", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch {
		case v.Name == "datasource" && (v.Type != "datasource" || v.Query != "prometheus"):
			t.Errorf("variable datasource is a %s of %v, want a datasource variable of prometheus", v.Type, v.Query)
		case v.Type == "query":
			// label_values(METRIC, LABEL): the metric has the label here.
			def := strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")")
			metric, label, ok := strings.Cut(def, ", ")
			if !ok {
				t.Errorf("variable %s: definition %q is not label_values(METRIC, LABEL)", v.Name, v.Definition)
				continue
			}
			res := p.query(t, fmt.Sprintf("count by (%s) (%s)", label, metric))
			if len(res) == 0 || res[0].Metric[label] == "" {
				t.Errorf("variable %s: %s has no %s here: %s", v.Name, metric, label, res)
			}
		}
	}
	if !vars["datasource"] {
		t.Error("the dashboard has no datasource variable")
	}
	ids := map[int]string{}
	var exprs int
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			if prev, dup := ids[pn.ID]; dup || pn.ID == 0 {
				t.Errorf("panel %q: id %d (already %q): want a unique non-zero id", pn.Title, pn.ID, prev)
			}
			ids[pn.ID] = pn.Title
			if pn.GridPos == nil || pn.GridPos.W == 0 || pn.GridPos.H == 0 || pn.GridPos.X+pn.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v, want a place on the 24-column grid", pn.Title, pn.GridPos)
			}
			walk(pn.Panels)
			if pn.Type == "row" {
				continue
			}
			if pn.Datasource == nil || pn.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: datasource %+v, want the uid ${datasource}", pn.Title, pn.Datasource)
			}
			if len(pn.Targets) == 0 {
				t.Errorf("panel %q has no query", pn.Title)
			}
			for _, tg := range pn.Targets {
				exprs++
				expr := strings.NewReplacer(grafanaVars...).Replace(tg.Expr)
				if strings.Contains(expr, "$") {
					t.Errorf("panel %q, query %s: a variable the check does not know: %s", pn.Title, tg.RefID, tg.Expr)
					continue
				}
				res, err := p.queryErr(expr)
				switch {
				case err != nil:
					t.Errorf("panel %q, query %s: %v", pn.Title, tg.RefID, err)
				case len(res) == 0:
					t.Errorf("panel %q, query %s returns no series on the test's mesh: %s", pn.Title, tg.RefID, expr)
				}
			}
		}
	}
	walk(d.Panels)
	if exprs < 15 {
		t.Errorf("%d queries in the dashboard, want the golden signals per service, edge and route, sidecar memory and the controller's health", exprs)
	}
	t.Logf("checked %d panels and %d queries against prometheus", len(ids), exprs)
}
