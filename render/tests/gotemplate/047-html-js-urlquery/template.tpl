{{ html "<a href=\"x\">'&'</a>" }}
{{ js "it's \"q\" <b> & = \\ \n" }}
{{ urlquery "a b&c=d/é" }}
{{ html .nope }} {{ html 1 2 }} {{ "<x>" | html }} {{ urlquery .list }}
