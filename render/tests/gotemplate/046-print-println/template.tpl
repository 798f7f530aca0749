{{ print "a" "b" 1 2 "c" 3.5 true }}
{{ print 1 2 }} {{ print "x" 1 }} {{ print .nothing 1 }}
{{ println "a" 1 .list -}}
end
