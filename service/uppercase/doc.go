// Package uppercase owns udpd's text transformation: the full Unicode
// uppercase mapping of a datagram's bytes, matching Python 3's str.upper()
// (including special casing such as "ß" → "SS"). Bytes that are not valid
// UTF-8 pass through unchanged.
//
// The package is pure computation: it has no sockets, no logging and no
// counters, and imports nothing from this module, only the standard library
// and golang.org/x/text (which decides the special cases once, at first
// use; after that the mapping is a table lookup per code point).
package uppercase
