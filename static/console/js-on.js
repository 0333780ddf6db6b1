// Runs in <head>: the page is scripted, so the no-JavaScript fallbacks (.no-js in console.css) stay hidden.
document.documentElement.classList.replace("no-js", "js");
