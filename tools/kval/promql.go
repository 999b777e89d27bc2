package main

import (
	"encoding/json"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
)

// rulePromQL parses every PromQL expression with Prometheus' own parser (the version of
// the Prometheus the render runs): alert rules, and the Prometheus targets of Grafana
// dashboards shipped in ConfigMaps (*.json keys).
func rulePromQL(c *RuleContext) Problems {
	var p Problems
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	for _, o := range c.Objects {
		switch t := o.Typed.(type) {
		case *monitoringv1.PrometheusRule:
			for _, g := range t.Spec.Groups {
				for _, r := range g.Rules {
					name := r.Alert
					if name == "" {
						name = r.Record
					}
					if _, err := parser.ParseExpr(r.Expr.String()); err != nil {
						p.add(o, "group %s, rule %s: PromQL: %v", g.Name, name, err)
					}
				}
			}
		case *corev1.ConfigMap:
			keys := make([]string, 0, len(t.Data))
			for k := range t.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if !strings.HasSuffix(k, ".json") || !strings.Contains(t.Data[k], `"panels"`) {
					continue
				}
				var dash struct {
					Panels []dashPanel `json:"panels"`
				}
				if err := json.Unmarshal([]byte(t.Data[k]), &dash); err != nil {
					p.add(o, "%s: not a Grafana dashboard: %v", k, err)
					continue
				}
				for _, panel := range flattenPanels(dash.Panels) {
					for _, tg := range panel.Targets {
						if tg.Expr == "" || !isPrometheus(tg.Datasource, panel.Datasource) {
							continue
						}
						if _, err := parser.ParseExpr(grafanaVars.Replace(tg.Expr)); err != nil {
							p.add(o, "%s: panel %q, target %s: PromQL: %v", k, panel.Title, tg.RefID, err)
						}
					}
				}
			}
		}
	}
	return p
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	Title      string          `json:"title"`
	Datasource *dashDatasource `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource *dashDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // collapsed rows
}

func flattenPanels(ps []dashPanel) []dashPanel {
	var out []dashPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

func isPrometheus(ds ...*dashDatasource) bool {
	for _, d := range ds {
		if d != nil {
			return d.Type == "prometheus" || d.UID == "prometheus"
		}
	}
	return false
}
