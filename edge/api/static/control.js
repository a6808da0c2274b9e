// control.js: filled by issue 19's work (see index.html)
'use strict';
