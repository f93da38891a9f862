package fib

// Multipath hash policies of net.ipv{4,6}.fib_multipath_hash_policy, which
// platform.SetMultipathHashPolicy sets with the other router sysctls.
const (
	HashL3      = 0 // source and destination address
	HashL4      = 1 // the 5-tuple: flows of one host pair spread over paths
	HashL3Inner = 2 // inner packet's addresses for tunnelled traffic
)

// DefaultHashPolicy is the policy switchd sets unless configured otherwise.
const DefaultHashPolicy = HashL4
