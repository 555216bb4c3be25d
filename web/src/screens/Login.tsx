import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { api, errorMessage, setAccessToken } from "../api/client";

/** Staff login. Errors come from the API's envelope; a lockout says how long to wait. */
export function Login() {
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const { data, error: failure, response } = await api.POST("/partner-auth/login", {
      body: { email, password },
    });
    setBusy(false);
    if (data?.data) {
      setAccessToken(data.data.accessToken);
      navigate("/", { replace: true });
    } else {
      setError(errorMessage(failure, response));
    }
  }

  return (
    <main className="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Partner Portal</h1>
        <label>
          Email
          <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
