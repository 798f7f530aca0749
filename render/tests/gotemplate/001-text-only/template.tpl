just text
no actions
