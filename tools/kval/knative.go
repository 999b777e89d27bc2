package main

import (
	"context"
	"strings"

	"knative.dev/pkg/apis"
)

// knativeObject is what Knative's admission webhooks call on every Knative resource.
type knativeObject interface {
	apis.Defaultable
	apis.Validatable
}

// knativeValidate runs each Knative object's SetDefaults and then Validate as on a create
// (apis.WithinCreate), with Knative's default configuration (features at their defaults;
// kind-setup.sh only turns on what these manifests do not depend on for validity).
func knativeValidate(objs []*Object) Problems {
	var problems Problems
	for _, o := range objs {
		if o.Typed == nil || !strings.HasSuffix(o.GVK.Group, "knative.dev") {
			continue
		}
		ko, ok := o.Typed.(knativeObject)
		if !ok {
			continue
		}
		// Validate a defaulted copy; keep the object as written for our own rules.
		c := o.Typed.DeepCopyObject().(knativeObject)
		ctx := apis.WithinCreate(context.Background())
		c.SetDefaults(ctx)
		fe := c.Validate(ctx)
		// Errors would be refused by Knative's webhook; warnings (e.g. insecure defaults)
		// would be accepted with a warning. Arca treats both as problems.
		for _, lv := range []struct {
			level apis.DiagnosticLevel
			label string
		}{{apis.ErrorLevel, "Knative validation"}, {apis.WarningLevel, "Knative warning"}} {
			if f := fe.Filter(lv.level); f != nil {
				for _, e := range strings.Split(strings.TrimSpace(f.Error()), "\n") {
					if e = strings.TrimSpace(e); e != "" {
						problems.add(o, "%s: %s", lv.label, e)
					}
				}
			}
		}
		_ = ko
	}
	return problems
}
