package main

// The control loop: every change of an Ingress of our class rebuilds the whole routing table from
// the informer cache, makes it live in the proxy, and only then writes the Ingress' status
// (observedGeneration = the generation that is now being served).

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"knative.dev/networking/pkg/apis/networking"
	"knative.dev/networking/pkg/apis/networking/v1alpha1"
	"knative.dev/networking/pkg/client/clientset/versioned"
	listers "knative.dev/networking/pkg/client/listers/networking/v1alpha1"
)

// Controller reconciles Ingresses of one class.
type Controller struct {
	Class     string
	Client    versioned.Interface
	Lister    listers.IngressLister
	Proxy     *Proxy
	PublicLB  string // domainInternal of the public load balancer (the "kourier" Service)
	PrivateLB string // domainInternal of the private load balancer ("kourier-internal")
	Log       *slog.Logger
	Queue     workqueue.TypedRateLimitingInterface[string]
}

// NewQueue returns the controller's work queue.
func NewQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "ingresses"})
}

// ours reports whether an Ingress carries our class annotation.
func (c *Controller) ours(obj any) bool {
	ing, ok := obj.(*v1alpha1.Ingress)
	if !ok {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			ing, ok = d.Obj.(*v1alpha1.Ingress)
			if !ok {
				return false
			}
		} else {
			return false
		}
	}
	return ing.Annotations[networking.IngressClassAnnotationKey] == c.Class
}

// Handler returns the informer event handler that enqueues our Ingresses (an update is enqueued if
// either side is ours, so that a class change removes the routes).
func (c *Controller) Handler() cache.ResourceEventHandler {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			c.Queue.Add(key)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if c.ours(obj) {
				enqueue(obj)
			}
		},
		UpdateFunc: func(old, obj any) {
			if c.ours(old) || c.ours(obj) {
				enqueue(obj)
			}
		},
		DeleteFunc: func(obj any) {
			if c.ours(obj) {
				enqueue(obj)
			}
		},
	}
}

// Run processes the queue until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	go func() {
		<-ctx.Done()
		c.Queue.ShutDown()
	}()
	for {
		key, quit := c.Queue.Get()
		if quit {
			return
		}
		if err := c.Reconcile(ctx, key); err != nil {
			c.Log.Warn("reconcile failed, retrying", "ingress", key, "error", err)
			c.Queue.AddRateLimited(key)
		} else {
			c.Queue.Forget(key)
		}
		c.Queue.Done(key)
	}
}

// Rebuild translates every Ingress of our class and makes the table live.
func (c *Controller) Rebuild() (*Table, map[string]*v1alpha1.Ingress, error) {
	all, err := c.Lister.List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	var mine []*v1alpha1.Ingress
	byKey := map[string]*v1alpha1.Ingress{}
	for _, ing := range all {
		if c.ours(ing) {
			mine = append(mine, ing)
			byKey[ing.Namespace+"/"+ing.Name] = ing
		}
	}
	t := BuildTable(mine)
	c.Proxy.SetTable(t)
	return t, byKey, nil
}

// Reconcile rebuilds the table and then brings key's status in line with it.
func (c *Controller) Reconcile(ctx context.Context, key string) error {
	start := time.Now()
	t, byKey, err := c.Rebuild()
	if err != nil {
		return err
	}
	ing, ok := byKey[key]
	if !ok {
		c.Log.Info("reconciled ingress", "ingress", key, "result", "removed from table")
		return nil
	}
	desired := ing.DeepCopy()
	st := &desired.Status
	st.InitializeConditions()
	if terr, failed := t.Failed[key]; failed {
		st.MarkLoadBalancerFailed("TranslationFailed", terr.Error())
		st.ObservedGeneration = ing.Generation
	} else {
		st.MarkNetworkConfigured()
		st.MarkLoadBalancerReady(
			[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: c.PublicLB}},
			[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: c.PrivateLB}},
		)
		// The table just made live holds exactly this generation.
		st.ObservedGeneration = t.Generations[key]
	}
	updated := false
	if !equality.Semantic.DeepEqual(ing.Status, desired.Status) {
		if _, err := c.Client.NetworkingV1alpha1().Ingresses(desired.Namespace).
			UpdateStatus(ctx, desired, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("update status: %w", err)
		}
		updated = true
	}
	c.Log.Info("reconciled ingress", "ingress", key, "generation", ing.Generation,
		"routes", t.Len(key), "ready", desired.IsReady(), "status_updated", updated,
		"failure", errString(t.Failed[key]), "took_ms", time.Since(start).Milliseconds())
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
