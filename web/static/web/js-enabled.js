// NHS.UK frontend's own switch: its scripts enhance the page only where they are supported. Every journey works without.
document.body.className += " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : "");
