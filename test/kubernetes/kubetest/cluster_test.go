package kubetest

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestClusterStartsAndRestarts(t *testing.T) {
	c := Start(t)
	c.Namespace("kubetest", "api")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Admin.CoreV1().ServiceAccounts("kubetest").Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Fatalf("service account not readable: %v", err)
	}
	c.StopAPIServer()
	c.StartAPIServer()
	if _, err := c.Admin.CoreV1().ServiceAccounts("kubetest").Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Fatalf("service account lost across an API server restart: %v", err)
	}
}
