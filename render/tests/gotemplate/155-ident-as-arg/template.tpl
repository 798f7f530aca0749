{{ print len }}
