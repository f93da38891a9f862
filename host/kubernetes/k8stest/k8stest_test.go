package k8stest

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/switchd/switchd/sim/ns"
)

func TestMain(m *testing.M) { ns.TestMain(m) }

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

// TestServerInNamespacePrivileged runs the server inside a namespace of
// the test on an address of that namespace, as the sim's daemons reach
// it: its clients work through the namespace, the address is not
// reachable from outside it, both processes run in it, and none is left
// once the test is over.
func TestServerInNamespacePrivileged(t *testing.T) {
	var n *ns.NS
	t.Run("run", func(t *testing.T) {
		n = ns.NewT(t, "k8s")
		addr := netip.MustParseAddr("10.77.0.1")
		if err := n.AddAddr("lo", netip.PrefixFrom(addr, 32)); err != nil {
			t.Fatal(err)
		}
		s := StartWith(t, Options{Netns: n, Addr: addr})
		if want := "https://10.77.0.1:"; !strings.HasPrefix(s.URL, want) {
			t.Fatalf("URL %s, want %s...", s.URL, want)
		}
		if _, err := s.Client().CoreV1().Namespaces().Create(context.Background(),
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.URL, "https://"), time.Second); err == nil {
			c.Close()
			t.Errorf("%s reachable from outside its namespace", s.URL)
		}
		if got := len(n.Pids()); got != 2 {
			t.Errorf("%d processes in the namespace, want etcd and kube-apiserver", got)
		}
	})
	if n == nil {
		return
	}
	if _, err := os.Stat(n.Path()); !os.IsNotExist(err) {
		t.Errorf("namespace %s left behind (%v)", n.Name, err)
	}
}

// TestStoreUnchecked makes a NetworkPolicy the API server refuses (an
// invalid CIDR) straight in etcd, reads it back through the API server
// as stored, and reads pods through a replica API server while the first
// one is stopped.
func TestStoreUnchecked(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client()
	bad := NetworkPolicy("default", "bad", networkingv1.NetworkPolicySpec{
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.300/8"}}}}},
	})
	if _, err := c.NetworkingV1().NetworkPolicies("default").Create(ctx, bad, metav1.CreateOptions{}); err == nil {
		t.Fatal("the API server took an invalid CIDR")
	}
	if err := s.StoreUnchecked("networkpolicies", bad); err != nil {
		t.Fatal(err)
	}
	got, err := c.NetworkingV1().NetworkPolicies("default").Get(ctx, "bad", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cidr := got.Spec.Ingress[0].From[0].IPBlock.CIDR; cidr != "10.0.0.300/8" {
		t.Errorf("stored CIDR read back as %q", cidr)
	}

	s.StopAPIServer()
	rc, stopReplica := s.Replica()
	if _, err := kubernetes.NewForConfigOrDie(rc).NetworkingV1().NetworkPolicies("default").Get(ctx, "bad", metav1.GetOptions{}); err != nil {
		t.Errorf("through the replica: %v", err)
	}
	stopReplica()
	s.StartAPIServer()
}
