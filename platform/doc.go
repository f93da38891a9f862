// Package platform tells what machine switchd runs on: ONIE machine.conf,
// switchdev ports, DMI and offload capability. Every lookup takes a root
// path so tests can use a fake /sys tree.
package platform
