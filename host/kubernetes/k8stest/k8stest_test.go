package k8stest

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestServer starts the real API server, makes a pod and gives it an
// address through the status subresource (as the kubelet would), reads
// it back through the kubeconfig, and finds it again after the API
// server restarted on the same etcd. Cleanup leaves no directory.
func TestServer(t *testing.T) {
	var dir string
	t.Run("run", func(t *testing.T) {
		s := Start(t)
		dir = s.dir
		ctx := context.Background()
		c := s.Client()
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a", Labels: map[string]string{"app": "a"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none"}}},
		}
		pod, err := c.CoreV1().Pods("x").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pod.Status.PodIP = "10.1.0.5"
		pod.Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.5"}}
		if _, err := c.CoreV1().Pods("x").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}

		cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		kc := kubernetes.NewForConfigOrDie(cfg)
		got, err := kc.CoreV1().Pods("x").Get(ctx, "a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.PodIP != "10.1.0.5" || got.Labels["app"] != "a" {
			t.Fatalf("pod through the kubeconfig: podIP %q labels %v", got.Status.PodIP, got.Labels)
		}

		s.StopAPIServer()
		if _, err := kc.CoreV1().Pods("x").Get(ctx, "a", metav1.GetOptions{}); err == nil {
			t.Fatal("the API server answered while stopped")
		}
		s.StartAPIServer()
		if _, err := kc.CoreV1().Pods("x").Get(ctx, "a", metav1.GetOptions{}); err != nil {
			t.Fatalf("pod after the API server restarted: %v", err)
		}
	})
	if dir == "" {
		return // skipped
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", dir, err)
	}
}
