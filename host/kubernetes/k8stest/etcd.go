package k8stest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
)

// StoreUnchecked writes obj straight into etcd under the key the API
// server keeps it at (/registry/<resource>/<namespace>/<name>), encoded
// as the API server stores it (protobuf), so no validation runs: a test
// makes an object an older API server accepted and today's refuses. The
// API server serves it and its watchers see it as any other.
func (s *Server) StoreUnchecked(resource string, obj runtime.Object) error {
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	if m.GetUID() == "" {
		m.SetUID(types.UID(fmt.Sprintf("k8stest-%d", time.Now().UnixNano())))
	}
	if ts := m.GetCreationTimestamp(); ts.IsZero() {
		m.SetCreationTimestamp(metav1.Now())
	}
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		return err
	}
	key := "/registry/" + resource + "/" + m.GetNamespace() + "/" + m.GetName()
	if m.GetNamespace() == "" {
		key = "/registry/" + resource + "/" + m.GetName()
	}
	// etcd's JSON gateway: no etcd client library needed.
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString(buf.Bytes()),
	})
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: s.dial}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(s.etcdURL+"/v3/kv/put", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("etcd put %s: %w", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("etcd put %s: %s: %s", key, resp.Status, b)
	}
	return nil
}
