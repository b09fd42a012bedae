// Package ca is the controller's certificate authority and the sidecars'
// proof of identity.
//
// Entry points: LoadOrCreate (the CA: an ECDSA P-256 root kept in a
// directory, issuing short-lived leaf certificates with SPIFFE URI SANs) and
// JoinVerifier (single-use join tokens minted by adapters for the sidecars
// they start). The config server (core/meshserver) calls both: a sidecar
// presents a join token and a CSR, and gets a certificate for the service of
// the instance the token names, if the registry holds that instance.
//
// Root rotation is not implemented yet: the CA has one root, and its bundle
// has room for more (Roots) so that a rotation can add a new root before
// retiring the old one.
package ca
