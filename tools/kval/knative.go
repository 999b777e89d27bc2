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
		if fe := c.Validate(ctx); fe != nil {
			for _, e := range strings.Split(strings.TrimSpace(fe.Error()), "\n") {
				if e = strings.TrimSpace(e); e != "" {
					problems.add(o, "Knative validation: %s", e)
				}
			}
		}
		_ = ko
	}
	return problems
}
