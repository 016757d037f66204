// Shows that /static serves JavaScript with the right Content-Type.
document.getElementById("clock").textContent = "loaded at " + new Date().toISOString();
