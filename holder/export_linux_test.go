package holder

// PartialStateMsg is the first chunk of a state blob whose last chunk
// never comes: what a server killed inside SaveState leaves.
func PartialStateMsg(data []byte) []byte {
	return append([]byte{byte(opState), chunkFirst}, data...)
}
