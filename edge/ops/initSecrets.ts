/**
 * Fresh secrets for a first devices.yaml (`streetbox init`, deploy/install.sh): the technician's
 * API token, the technician's broker and Node-RED passwords (devices.yaml gets only their
 * hashes) and Node-RED's credentialSecret. The plain values go once into a credentials file,
 * mode 0600, in `NAME=value` lines a shell can source; nothing is printed.
 */
import { randomBytes } from 'node:crypto';
import { generateToken, hashPassword } from '../control/passwords.js';

export interface InitSecrets {
  /** API token, role technician */
  apiToken: string;
  brokerPassword: string;
  /** scrypt, for broker.users[].passwordHash */
  brokerPasswordHash: string;
  nodeRedPassword: string;
  /** bcrypt, for nodeRed.users[].passwordHash */
  nodeRedPasswordHash: string;
  /** encrypts Node-RED's flow credentials */
  nodeRedCredentialSecret: string;
}

/** 24 random bytes, base64url: 32 characters a technician can paste, nothing a shell or YAML must escape. */
export function randomPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** Node-RED's editor checks bcrypt hashes: bcryptjs as Node-RED itself resolves it. */
export async function bcryptHash(password: string): Promise<string> {
  const { loadBcrypt } = await import('../flows/nodeRed.js');
  return loadBcrypt().hash(password, 10);
}

export async function generateSecrets(): Promise<InitSecrets> {
  const brokerPassword = randomPassword();
  const nodeRedPassword = randomPassword();
  const [brokerPasswordHash, nodeRedPasswordHash] = await Promise.all([hashPassword(brokerPassword), bcryptHash(nodeRedPassword)]);
  return { apiToken: generateToken(), brokerPassword, brokerPasswordHash, nodeRedPassword, nodeRedPasswordHash, nodeRedCredentialSecret: randomPassword() };
}

/** The credentials file: the plain secrets of the users that devices.yaml holds only as hashes. */
export function renderCredentials(s: InitSecrets, config: string, at: string): string {
  return [
    `# Written by \`streetbox init\` at ${at} for ${config}.`,
    '# The technician\'s plain credentials: keep them (a password manager), then delete this file.',
    '# devices.yaml holds the API token and only hashes of the passwords.',
    '# HTTP API, role technician (the CLI reads $STREETBOX_TOKEN)',
    `STREETBOX_TOKEN=${s.apiToken}`,
    '# MQTT user "technician"',
    `BROKER_TECHNICIAN_PASSWORD=${s.brokerPassword}`,
    '# Node-RED editor user "technician" (once nodeRed.enabled is true)',
    `NODERED_TECHNICIAN_PASSWORD=${s.nodeRedPassword}`,
    '',
  ].join('\n');
}
