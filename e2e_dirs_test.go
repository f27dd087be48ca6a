package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/butler-sre/butler/pipeline/minisigntest"
)

// e2eRulesFile is a rules file of one group holding one always-firing alert.
func e2eRulesFile(group string) string {
	return fmt.Sprintf("groups:\n  - name: %s\n    rules:\n      - alert: %sAlive\n        expr: vector(1)\n", group, group)
}

// e2ePromManager is the butler.toml of the manager prometheus: its dest,
// prometheus.yml from source as it is (not a template), the tables of more,
// and reloads through prom.
func e2ePromManager(dest, source string, prom *e2eServer, more string) string {
	return fmt.Sprintf(`
[managers.prometheus]
dest = %q

[[managers.prometheus.files]]
source   = %q
template = false
%s
[managers.prometheus.reload]
url = %q
`, dest, source, more, prom.url+"/-/reload")
}

// TestE2EPrometheusRuleDirectory: the real Prometheus loads rules/*.yml from
// a directory source. A rules file removed upstream is removed from dest and
// Prometheus stops loading its group after the reload; a reload Prometheus
// refuses brings the removed file back; a file butler did not write is
// never touched.
func TestE2EPrometheusRuleDirectory(t *testing.T) {
	t.Parallel()
	promBin := needProgram(t, "prometheus")
	nodeBin := needProgram(t, "prometheus-node-exporter")
	root := t.TempDir()
	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	dest := e2eNewDest(t, root, "prometheus")
	operator := filepath.Join(dest, "rules", "operator.txt")
	e2eWriteFile(t, operator, "not a rules file: butler must leave it\n")
	prom := e2eStartPrometheus(t, promBin, root, dest)

	store := filepath.Join(root, "store")
	good := "global:\n  evaluation_interval: 15s\nrule_files:\n  - rules/*.yml\n"
	e2eWriteFile(t, filepath.Join(store, "prometheus.yml"), good)
	e2eWriteFile(t, filepath.Join(store, "rules", "node.yml"), e2eRulesFile("node"))
	e2eWriteFile(t, filepath.Join(store, "rules", "disk.yml"), e2eRulesFile("disk"))

	b := e2eNewButler(t, root, node)
	b.writeConfig(t, e2ePromManager(dest, filepath.Join(store, "prometheus.yml"), prom, fmt.Sprintf(`
[[managers.prometheus.dirs]]
source   = %q
path     = "rules"
include  = ["*.yml"]
template = false
`, filepath.Join(store, "rules"))))
	groups := func() []string {
		var names []string
		for g := range e2ePromRules(t, prom.url) {
			names = append(names, g)
		}
		return names
	}
	wantGroups := func(want ...string) {
		t.Helper()
		got := groups()
		if fmt.Sprint(slices.Sorted(slices.Values(got))) != fmt.Sprint(slices.Sorted(slices.Values(want))) {
			t.Errorf("Prometheus loads the rule groups %v, want %v", got, want)
		}
	}

	b.sync(t).wantCode(t, 0)
	wantGroups("node", "disk")

	// disk.yml removed upstream, and a prometheus.yml Prometheus refuses:
	// the reload is refused, and disk.yml comes back with the rest.
	if err := os.Remove(filepath.Join(store, "rules", "disk.yml")); err != nil {
		t.Fatal(err)
	}
	e2eWriteFile(t, filepath.Join(store, "prometheus.yml"), good+"bogus: 1\n")
	res := b.sync(t)
	res.wantCode(t, 1)
	res.wantStderr(t, "manager prometheus", "500")
	if _, err := os.Stat(filepath.Join(dest, "rules", "disk.yml")); err != nil {
		t.Errorf("refused reload: rules/disk.yml not put back: %v", err)
	}
	wantGroups("node", "disk")

	// Fixed: disk.yml is removed and Prometheus stops loading its group.
	e2eWriteFile(t, filepath.Join(store, "prometheus.yml"), good+"# fixed\n")
	b.sync(t).wantCode(t, 0)
	if _, err := os.Stat(filepath.Join(dest, "rules", "disk.yml")); !os.IsNotExist(err) {
		t.Errorf("rules/disk.yml is still in dest: %v", err)
	}
	wantGroups("node")
	if got := e2eRead(t, operator); !strings.Contains(got, "butler must leave it") {
		t.Errorf("the operator's file was changed: %q", got)
	}
}

// TestE2EPrometheusSignedConfiguration: a configuration signed with the real
// minisign tool is applied; its body altered on the store, it is refused,
// nothing is written and Prometheus keeps running the signed one; an older
// signed version replayed is refused; a newer signed version is applied.
func TestE2EPrometheusSignedConfiguration(t *testing.T) {
	t.Parallel()
	promBin := needProgram(t, "prometheus")
	nodeBin := needProgram(t, "prometheus-node-exporter")
	tool := minisigntest.Tool(t)
	key := minisigntest.NewPair(t, tool)
	root := t.TempDir()
	node := e2eStartNodeExporter(t, nodeBin, filepath.Join(root, "textfile"))
	dest := e2eNewDest(t, root, "prometheus")
	prom := e2eStartPrometheus(t, promBin, root, dest)
	src := e2eNewSources(t)
	publish := func(body string, at time.Time) {
		src.Set("/prometheus.yml", body)
		src.Set("/prometheus.yml.minisig", string(minisigntest.Sign(t, tool, key, []byte(body), "-t", fmt.Sprintf("timestamp:%d", at.Unix()))))
	}
	v1 := "global:\n  scrape_interval: 11s\n"
	t0 := time.Now().Add(-time.Hour)
	publish(v1, t0)
	v1sig := src.Get("/prometheus.yml.minisig")

	b := e2eNewButler(t, root, node)
	b.writeConfig(t, e2ePromManager(dest, src.url("/prometheus.yml"), prom, fmt.Sprintf(`
[managers.prometheus.verify]
minisign_keys = [%q]
`, key.Pub)))

	b.sync(t).wantCode(t, 0)
	if got := prom.configText(t); !strings.Contains(got, "scrape_interval: 11s") {
		t.Fatalf("Prometheus runs %q, want the signed v1", got)
	}
	b.wantMetrics(t, map[string]float64{`butler_verify{file="prometheus.yml",manager="prometheus"}`: 1})

	for _, step := range []struct {
		name, body, sig, stderr string
	}{
		{"body altered on the store", "global:\n  scrape_interval: 1s\n", v1sig, "signature"},
		{"an older signed version replayed", "", "", "replay"},
	} {
		if step.body != "" {
			src.Set("/prometheus.yml", step.body)
			src.Set("/prometheus.yml.minisig", step.sig)
		} else {
			publish(v1, t0.Add(-time.Hour)) // the same v1, signed earlier
		}
		before := e2eSnap(t, dest)
		res := b.sync(t)
		res.wantCode(t, 1)
		res.wantStderr(t, "manager=prometheus", "prometheus.yml", "phase=fetch", step.stderr)
		before.wantSame(t, dest)
		if got := prom.configText(t); !strings.Contains(got, "scrape_interval: 11s") {
			t.Errorf("%s: Prometheus runs %q, want the signed v1 still", step.name, got)
		}
		b.wantMetrics(t, map[string]float64{`butler_verify{file="prometheus.yml",manager="prometheus"}`: 0})
	}

	publish("global:\n  scrape_interval: 12s\n", t0.Add(time.Minute))
	b.sync(t).wantCode(t, 0)
	if got := prom.configText(t); !strings.Contains(got, "scrape_interval: 12s") {
		t.Errorf("Prometheus runs %q, want the newer signed v2", got)
	}
	b.wantMetrics(t, map[string]float64{`butler_verify{file="prometheus.yml",manager="prometheus"}`: 1})
}
