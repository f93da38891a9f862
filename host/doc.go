// Package host manages workload endpoints on a server: container veths, VM
// taps, IPAM blocks, proxy ARP/NDP and the server side of the CNI plugin.
// It asks fib for routes and policy for rules; it never programs either
// directly.
package host
