// Package validate checks deploy/kubernetes without a cluster: its test
// renders each kustomization with the kustomize API and decodes every
// object strictly into the Kubernetes API types. It is a module of its
// own so that the Kubernetes libraries stay out of udpd's.
package validate
