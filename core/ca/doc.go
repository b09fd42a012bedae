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
// Root rotation (rotate.go), as in Consul's mesh: CA.Rotate makes a new
// root active and signs it with the old root's key. Every leaf issued after
// that carries the cross-signed root as its intermediate, so a peer that
// still trusts only the old root verifies it, and a peer that trusts the new
// one verifies it directly. The old root stays in the bundle (RootsPEM,
// Pool, Roots) until no leaf it signed can still be valid, LeafTTL plus a
// minute after the rotation; CA.Retire drops it then (core/meshserver
// calls it on time, NextRetirement). Rotating again before that is fine:
// leaves then carry the chain of cross-signatures back to every root still
// trusted. Roots are named by RootID (spiffe.RootID, so the sidecar names
// them the same way without linking this package), their subject key ID in
// hex, which is also the authority key ID of the leaves they sign. Every
// leaf is cut from one template, SignLeaf, which test CAs
// (core/proxy/proxytest) use too.
//
// The directory holds ca.crt and ca.key (the active root), join.secret, and
// after a rotation rotation.json (the previous roots, their
// cross-signatures and retirement times). A rotation writes ca.*.next, then
// rotation.json (which commits it), then renames; a controller that crashed
// in between completes or drops the rotation when it loads; CA.Reload lets
// controller replicas that share the directory take a rotation made by
// another one (it leaves a rotation under way alone). A directory that
// does not add up (a key that is not the root's, a rotation.json of another
// root) is refused with an error that names the file and the way out. The
// files are read within 1 MiB each and rotation.json is checked for nesting
// before it is decoded (limits.go); a real one is a few KiB.
//
// # Join tokens
//
// A join token (jointoken.go) is single-use. JoinVerifier.VerifyAnd checks
// the signature and expiry, refuses a token already spent, runs the
// caller's accept function (core/meshserver does every check of the join
// and signs the certificate there), and only then spends the token through
// a SpentStore, whose Spend is atomic: of concurrent joins with one token,
// exactly one gets its certificate. A join that fails (an instance not yet
// known, a garbage CSR) leaves its token to be used again.
//
// The controller's SpentStore is a SpentFile (spent.go) in its data
// directory, "spent-join-tokens": a header line, then one line per spent
// token, "<expiry unix seconds> <nonce>", appended and fsynced before the
// certificate goes out. Opening it drops expired lines and rewrites it
// atomically (temporary file, fsync, rename, fsync of the directory); so
// does a Spend once expired lines outnumber live ones. A last line without
// its newline is a write a crash cut short (its join got no certificate)
// and is dropped. Anything else the controller cannot read back (a file
// that is not ours, a malformed line, more than 48 MiB) stops the
// controller from starting, with an error naming the file: starting
// without it would make the tokens it records valid again until they
// expire. A record is an ID and an expiry, so that replicas can share the
// store through a replicated log. NewJoinVerifier keeps spent tokens in
// memory only, for tests and tools.
package ca
