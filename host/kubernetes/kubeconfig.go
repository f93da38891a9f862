package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// RESTConfig is the client config of cluster mode: from the kubeconfig
// file at path, or, with path "", the pod's service account (in-cluster).
//
// The kubeconfig is read here rather than with client-go's clientcmd,
// whose package init builds a scheme: the daemon's binary is also the
// CNI plugin, and every package it links is initialised at each plugin
// start. What is read: the current context's cluster (server,
// certificate-authority[-data], insecure-skip-tls-verify) and user
// (token, tokenFile, client-certificate[-data], client-key[-data]);
// relative paths are relative to the file. Exec and auth-provider
// plugins are refused.
func RESTConfig(path string) (*rest.Config, error) {
	if path == "" {
		return rest.InClusterConfig()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc struct {
		CurrentContext string `json:"current-context"`
		Clusters       []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server   string `json:"server"`
				CA       string `json:"certificate-authority"`
				CAData   []byte `json:"certificate-authority-data"`
				Insecure bool   `json:"insecure-skip-tls-verify"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				Token        string `json:"token"`
				TokenFile    string `json:"tokenFile"`
				Cert         string `json:"client-certificate"`
				CertData     []byte `json:"client-certificate-data"`
				Key          string `json:"client-key"`
				KeyData      []byte `json:"client-key-data"`
				Exec         any    `json:"exec"`
				AuthProvider any    `json:"auth-provider"`
			} `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
				User    string `json:"user"`
			} `json:"context"`
		} `json:"contexts"`
	}
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: current-context %q is not among its contexts", path, kc.CurrentContext)
	}
	rc := &rest.Config{}
	found = false
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			found = true
			rc.Host = c.Cluster.Server
			rc.TLSClientConfig.CAFile, rc.TLSClientConfig.CAData = rel(c.Cluster.CA), c.Cluster.CAData
			rc.TLSClientConfig.Insecure = c.Cluster.Insecure
		}
	}
	if !found || rc.Host == "" {
		return nil, fmt.Errorf("kubeconfig %s: cluster %q has no server", path, clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		if u.User.Exec != nil || u.User.AuthProvider != nil {
			return nil, fmt.Errorf("kubeconfig %s: user %q needs a credential plugin (exec, auth-provider); give a token or a client certificate", path, userName)
		}
		rc.BearerToken, rc.BearerTokenFile = u.User.Token, rel(u.User.TokenFile)
		rc.TLSClientConfig.CertFile, rc.TLSClientConfig.CertData = rel(u.User.Cert), u.User.CertData
		rc.TLSClientConfig.KeyFile, rc.TLSClientConfig.KeyData = rel(u.User.Key), u.User.KeyData
	}
	return rc, nil
}
