package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Workload is what a container of a rendered workload gets from the manifests, resolved:
// every variable with its value (ConfigMaps and Secrets looked up), every file a volume
// puts in the container, every writable directory. A test starts the workload's binary
// with exactly this (envtest in tests/e2e/deployment.rs).
type Workload struct {
	Kind      string            `json:"kind"`
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Container string            `json:"container"`
	Image     string            `json:"image"`
	Command   []string          `json:"command"`
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env"`
	// Files: absolute path in the container -> base64 content (Secret and ConfigMap volumes).
	Files map[string]string `json:"files"`
	// Dirs: writable mounts (emptyDir).
	Dirs []string `json:"dirs"`
}

// envMain: kval env [-patch FILE]... FILE...
// Prints the resolved Workloads of every Knative Service and Job as JSON. A problem (a
// reference to a ConfigMap/Secret or key that the inputs do not have, a Secret or ConfigMap
// mounted where no variable points, a volume that does not exist) is printed as one line
// on stderr and makes the exit status 1.
//
// A patch file (test fixtures) breaks the render on purpose: its "# target: Kind/ns/name"
// line names the object, its body is an RFC 6902 JSON patch (in YAML) applied to it.
func envMain(args []string) int {
	fs := flag.NewFlagSet("kval env", flag.ExitOnError)
	var patches multiFlag
	fs.Var(&patches, "patch", "a fixture that patches one object (repeatable)")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kval env [-patch FILE]... FILE...")
		return 2
	}
	var objs []*Object
	var problems Problems
	for _, f := range fs.Args() {
		data, err := readInput(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kval env: %v\n", err)
			return 2
		}
		o, p := decodeAll(f, data)
		objs = append(objs, o...)
		problems = append(problems, p...)
	}
	for _, f := range patches {
		var err error
		if objs, err = applyPatch(objs, f); err != nil {
			fmt.Fprintf(os.Stderr, "kval env: %s: %v\n", f, err)
			return 2
		}
	}
	data := map[string]map[string]string{} // "Kind/ns/name" -> key -> value
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *corev1.Secret:
			m := map[string]string{}
			for k, v := range t.Data {
				m[k] = string(v)
			}
			for k, v := range t.StringData {
				m[k] = v
			}
			data[o.ID()] = m
		case *corev1.ConfigMap:
			m := map[string]string{}
			for k, v := range t.Data {
				m[k] = v
			}
			data[o.ID()] = m
		}
	}
	var out []Workload
	for _, o := range objs {
		kind := o.GVK.Kind
		if kind != "Service" && kind != "Job" {
			continue
		}
		ps := podSpecOf(o)
		if ps == nil {
			continue
		}
		for _, ct := range ps.Containers {
			w, p := resolve(o, ps, &ct, data)
			out = append(out, w)
			problems = append(problems, p...)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind+out[i].Name < out[j].Kind+out[j].Name })
	problems.sortUnique()
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "kval env: %v\n", err)
		return 2
	}
	if len(problems) > 0 {
		return 1
	}
	return 0
}

func resolve(o *Object, ps *corev1.PodSpec, ct *corev1.Container, data map[string]map[string]string) (Workload, Problems) {
	var p Problems
	w := Workload{
		Kind: o.GVK.Kind, Namespace: o.Namespace, Name: o.Name, Container: ct.Name, Image: ct.Image,
		Command: ct.Command, Args: ct.Args, Env: map[string]string{}, Files: map[string]string{},
	}
	lookup := func(kind, name string, optional *bool, what string) map[string]string {
		m, ok := data[kind+"/"+o.Namespace+"/"+name]
		if !ok && (optional == nil || !*optional) {
			p.add(o, "container %q: %s: %s %s/%s does not exist", ct.Name, what, kind, o.Namespace, name)
		}
		return m
	}
	key := func(m map[string]string, kind, name, k string, optional *bool, what string) (string, bool) {
		if m == nil {
			return "", false
		}
		v, ok := m[k]
		if !ok && (optional == nil || !*optional) {
			p.add(o, "container %q: %s: %s %s/%s has no key %q", ct.Name, what, kind, o.Namespace, name, k)
		}
		return v, ok
	}
	for _, from := range ct.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			for k, v := range lookup("ConfigMap", from.ConfigMapRef.Name, from.ConfigMapRef.Optional, "envFrom") {
				w.Env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			for k, v := range lookup("Secret", from.SecretRef.Name, from.SecretRef.Optional, "envFrom") {
				w.Env[from.Prefix+k] = v
			}
		}
	}
	for _, e := range ct.Env {
		what := "env " + e.Name
		switch {
		case e.ValueFrom == nil:
			w.Env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			if v, ok := key(lookup("Secret", r.Name, r.Optional, what), "Secret", r.Name, r.Key, r.Optional, what); ok {
				w.Env[e.Name] = v
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			if v, ok := key(lookup("ConfigMap", r.Name, r.Optional, what), "ConfigMap", r.Name, r.Key, r.Optional, what); ok {
				w.Env[e.Name] = v
			}
		default:
			p.add(o, "container %q: %s: only values, secretKeyRef and configMapKeyRef are resolved", ct.Name, what)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range ct.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			p.add(o, "container %q: mounts volume %q, which the pod does not have", ct.Name, m.Name)
			continue
		}
		var kind, name string
		var items []corev1.KeyToPath
		var optional *bool
		switch {
		case v.EmptyDir != nil:
			w.Dirs = append(w.Dirs, m.MountPath)
			continue
		case v.Secret != nil:
			kind, name, items, optional = "Secret", v.Secret.SecretName, v.Secret.Items, v.Secret.Optional
		case v.ConfigMap != nil:
			kind, name, items, optional = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional
		default:
			p.add(o, "container %q: volume %q: only emptyDir, Secret and ConfigMap volumes are resolved", ct.Name, m.Name)
			continue
		}
		what := fmt.Sprintf("volume %q", m.Name)
		src := lookup(kind, name, optional, what)
		if len(items) == 0 {
			for k := range src {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			if val, ok := key(src, kind, name, it.Key, optional, what); ok {
				w.Files[strings.TrimRight(m.MountPath, "/")+"/"+it.Path] = base64.StdEncoding.EncodeToString([]byte(val))
			}
		}
		// Least privilege: a mounted Secret or ConfigMap is there for a setting (a variable,
		// the command or its arguments) that names it.
		used := false
		settings := append(append(append([]string{}, ct.Command...), ct.Args...), mapValues(w.Env)...)
		for _, val := range settings {
			if val == m.MountPath || strings.Contains(val, strings.TrimRight(m.MountPath, "/")+"/") {
				used = true
			}
		}
		if !used {
			p.add(o, "container %q: mounts %s %s at %s, but no variable points into it (unused: remove it)", ct.Name, kind, name, m.MountPath)
		}
	}
	return w, p
}

// applyPatch applies a fixture's JSON patch to the object its "# target:" line names.
func applyPatch(objs []*Object, file string) ([]*Object, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	target := ""
	for _, l := range strings.Split(string(text), "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(l), "# target: "); ok {
			target = strings.TrimSpace(t)
		}
	}
	if target == "" {
		return nil, fmt.Errorf("no '# target: Kind/namespace/name' line")
	}
	ops, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, err
	}
	for i, o := range objs {
		if o.ID() != target {
			continue
		}
		doc, err := json.Marshal(o.Raw)
		if err != nil {
			return nil, err
		}
		patched, err := patch.Apply(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", target, err)
		}
		n, problems := decodeOne(o.Source+" (patched)", patched)
		if n == nil || len(problems) > 0 {
			return nil, fmt.Errorf("the patched %s does not decode: %v", target, problems)
		}
		objs[i] = n
		return objs, nil
	}
	return nil, fmt.Errorf("no object %s in the inputs", target)
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
