package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	servingv1beta1 "knative.dev/serving/pkg/apis/serving/v1beta1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one rendered manifest.
type Object struct {
	Source    string // file:document-number
	GVK       schema.GroupVersionKind
	Namespace string
	Name      string
	Typed     runtime.Object // nil: no Go type for this kind
	Raw       map[string]any
}

// ID is "Kind/namespace/name" ("Kind/name" for cluster-scoped objects).
func (o *Object) ID() string {
	if o.Namespace == "" {
		return o.GVK.Kind + "/" + o.Name
	}
	return o.GVK.Kind + "/" + o.Namespace + "/" + o.Name
}

var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		rbacv1.AddToScheme, policyv1.AddToScheme,
		servingv1.AddToScheme, servingv1beta1.AddToScheme,
		eventingv1.AddToScheme, sourcesv1.AddToScheme,
		certmanagerv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decodeAll splits a multi-document YAML stream and strict-decodes each document.
func decodeAll(source string, data []byte) ([]*Object, Problems) {
	var objs []*Object
	var problems Problems
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		where := fmt.Sprintf("%s:document %d", source, n)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot split YAML: %v", where, err))
			break
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		o, p := decodeOne(where, doc)
		if o != nil {
			objs = append(objs, o)
		}
		problems = append(problems, p...)
	}
	return objs, problems
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func decodeOne(where string, doc []byte) (*Object, Problems) {
	var problems Problems
	// YAMLToJSONStrict rejects duplicate keys at any depth.
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		// Still try to identify the object for a useful message.
		loose, lerr := yaml.YAMLToJSON(doc)
		var tm typeMeta
		if lerr == nil && kjson.UnmarshalCaseSensitivePreserveInts(loose, &tm) == nil && tm.Kind != "" {
			o := &Object{Source: where, GVK: schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind), Namespace: tm.Metadata.Namespace, Name: tm.Metadata.Name}
			problems.add(o, "%s", cleanYAMLError(err))
			return nil, problems
		}
		return nil, append(problems, fmt.Sprintf("%s: invalid YAML: %v", where, err))
	}
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil || tm.Kind == "" || tm.APIVersion == "" {
		return nil, append(problems, fmt.Sprintf("%s: not a Kubernetes object (no apiVersion/kind)", where))
	}
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	o := &Object{Source: where, GVK: gvk, Namespace: tm.Metadata.Namespace, Name: tm.Metadata.Name}
	if o.Name == "" {
		problems.add(o, "metadata.name is empty")
	}
	raw := map[string]any{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &raw); err == nil {
		o.Raw = raw
	}
	typed, err := scheme.New(gvk)
	if err != nil {
		if scheme.IsGroupRegistered(gvk.Group) {
			problems.add(o, "%s is not a kind of %s known to the Go types", gvk.Kind, gvk.GroupVersion())
			return o, problems
		}
		return o, problems // unknown group: reported by the caller unless allowlisted
	}
	strict, err := kjson.UnmarshalStrict(js, typed, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		problems.add(o, "does not decode into %T: %v", typed, err)
		return o, problems
	}
	for _, e := range strict {
		problems.add(o, "strict decoding: %v", e)
	}
	o.Typed = typed
	return o, problems
}

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	return "strict YAML: " + s
}
