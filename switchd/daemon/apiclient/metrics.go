package apiclient

// MetricsStatus is the Prometheus listener (/switchd/metrics): where it
// serves /metrics, or why it does not (an address in use is found only
// when the daemon binds it).
type MetricsStatus struct {
	Address   string `json:"address"`
	Listening bool   `json:"listening"`
	LastError string `json:"last-error,omitempty"`
}
