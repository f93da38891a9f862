// Package policy owns the one nftables table switchd programs: ACLs and
// workload policy compiled to rules, sets and maps, applied atomically.
package policy
